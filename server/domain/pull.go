package domain

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/rpi-deploy/rpi-deploy/image-tools/manifest"
	"github.com/rpi-deploy/rpi-deploy/image-tools/zstimg"
	"github.com/rpi-deploy/rpi-deploy/server/store"
)

// Pulling an image from a peer site.
//
// The pull asks the peer's server for the packed file from the first byte this
// site does not hold (GET PEER/api/v1/peer/images/NAME.img.zst with Range and the
// database's peer credential). It takes the answer one zstd frame at a time, as the
// manifest lays them out, and proves each frame before it is written: it must decode
// to its chunk, whose SHA-256 the manifest holds (zstimg.DecodeChunk, the check the
// agent and rpi-image verify use). So the .part file only ever holds proven frames:
// a peer that cuts the answer or sends wrong bytes costs at most the frame in
// flight, and the next pull continues after the last proven frame, also after
// either server restarts. When the file is whole it gets the check every upload
// ends with (length and compressed_sha256, installPart) and only then becomes
// ready at this site.

// ErrPeerBytes is wrapped when a peer site's answer is cut short or does not match
// the image's manifest; the bytes proven before it are kept.
var ErrPeerBytes = errors.New("peer answer does not match the manifest")

// pullProgressEvery is how often a running pull records its progress in the
// database and on the event stream.
const pullProgressEvery = time.Second

// pullRetryAfter is how long after a failed pull a hello may start the next one (an
// operator's `image pull` starts it at once).
const pullRetryAfter = 30 * time.Second

// peerSilence is how long a peer's answer may stall before the pull gives up on it.
const peerSilence = time.Minute

// pullRun is one pull of an image, running or finished.
type pullRun struct {
	from  string       // the site pulled from ("" until chosen); guarded by Service.siteMu
	size  int64        // compressed bytes in all; guarded by Service.siteMu
	bytes atomic.Int64 // proven bytes in the .part file
	done  bool         // finished (err says how); guarded by Service.siteMu
	err   error        // guarded by Service.siteMu
	ended time.Time    // when it finished; guarded by Service.siteMu
}

// imageHere says why a hello cannot be given image img at this site ("" when it
// can), inside the hello's transaction: the image is ready, but this site has not
// recorded it as held. When no site has recorded it at all, it is served from here
// as it always was (a single server whose images predate migration 0035 until its
// next start records them). Otherwise a site that holds it ready is asked for it in
// the background (one pull per image; after a failed one, the next hello at least
// pullRetryAfter later starts another) and the board is told to retry.
func (s *Service) imageHere(ctx context.Context, t *store.Tx, img store.Image) (string, error) {
	rows, err := t.ImageSites(ctx, img.Name)
	if err != nil || len(rows) == 0 {
		return "", err
	}
	for _, r := range rows {
		if r.Site == s.opt.Site && r.State == store.SiteReady && r.CompressedSHA256 == img.CompressedSHA256 && s.hasFiles(img) {
			s.setLocal(img.Name, img.CompressedSHA256)
			return "", nil
		}
	}
	src, ok := s.chooseSource(img, rows, "")
	if !ok {
		return fmt.Sprintf("image %q is not at site %s and no other site holds it ready", img.Name, s.opt.Site), nil
	}
	s.siteMu.Lock()
	last := s.pulls[img.Name]
	wait := last != nil && last.done && last.err != nil && s.now().Sub(last.ended) < pullRetryAfter
	var lastErr error
	if last != nil {
		lastErr = last.err
	}
	s.siteMu.Unlock()
	if wait {
		return fmt.Sprintf("image %q is not at site %s yet; its last pull from site %s failed: %v", img.Name, s.opt.Site, src.Site, lastErr), nil
	}
	run, err := s.startPull(img.Name, "")
	if err != nil {
		return fmt.Sprintf("image %q is not at site %s yet: %v", img.Name, s.opt.Site, err), nil
	}
	return fmt.Sprintf("image %q is being pulled to site %s from site %s (%d of %d bytes)", img.Name, s.opt.Site, src.Site,
		run.bytes.Load(), img.CompressedSize), nil
}

// PullImage starts pulling image name from site from ("" = any site that holds it
// ready) unless this site holds it already (state ready) or a pull of it is running
// (that pull's state). It returns at once; the image's sites (GET
// /api/v1/images/NAME) show the progress and, should the pull fail, why.
func (s *Service) PullImage(ctx context.Context, name, from string) (UploadState, error) {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return UploadState{}, fmt.Errorf("image %q: %w", name, err)
	}
	if img.State != store.ImageReady {
		return UploadState{}, fmt.Errorf("image %q is still %s: only a ready image can be pulled: %w", name, img.State, ErrConflict)
	}
	if s.isLocal(img) {
		return UploadState{Name: name, State: store.ImageReady, Offset: img.CompressedSize, Size: img.CompressedSize}, nil
	}
	if _, err := s.pullSource(ctx, img, from); err != nil {
		return UploadState{}, err
	}
	run, err := s.startPull(name, from)
	if err != nil {
		return UploadState{}, err
	}
	return UploadState{Name: name, State: store.SitePulling, Offset: run.bytes.Load(), Size: img.CompressedSize}, nil
}

// pullSource picks the site to pull img from: one (from, when not "") that holds
// the same content ready and has a peer URL.
func (s *Service) pullSource(ctx context.Context, img store.Image, from string) (store.ImageSite, error) {
	rows, err := s.st.ImageSites(ctx, img.Name)
	if err != nil {
		return store.ImageSite{}, err
	}
	if src, ok := s.chooseSource(img, rows, from); ok {
		return src, nil
	}
	if from != "" {
		return store.ImageSite{}, fmt.Errorf("site %q does not hold image %q ready with compressed sha256 %s: %w", from, img.Name,
			img.CompressedSHA256, ErrNotFound)
	}
	return store.ImageSite{}, fmt.Errorf("no other site holds image %q ready with compressed sha256 %s: %w", img.Name,
		img.CompressedSHA256, ErrNotFound)
}

func (s *Service) chooseSource(img store.Image, rows []store.ImageSite, from string) (store.ImageSite, bool) {
	for _, r := range rows {
		if r.Site != s.opt.Site && r.State == store.SiteReady && r.CompressedSHA256 == img.CompressedSHA256 && r.URL != "" &&
			(from == "" || r.Site == from) {
			return r, true
		}
	}
	return store.ImageSite{}, false
}

// startPull starts the pull of image name in the background, or returns the one
// running. One pull per image at a time: it holds the image's upload claim, so it
// neither runs twice nor beside an upload (ErrConflict).
func (s *Service) startPull(name, from string) (*pullRun, error) {
	s.siteMu.Lock()
	defer s.siteMu.Unlock()
	if run := s.pulls[name]; run != nil && !run.done {
		return run, nil
	}
	if s.bg.Err() != nil {
		return nil, fmt.Errorf("image %q: the server is stopping: %w", name, store.ErrClosed)
	}
	if !s.claimUpload(name) {
		return nil, fmt.Errorf("image %q: an upload is in progress: %w", name, ErrConflict)
	}
	run := &pullRun{from: from}
	run.bytes.Store(s.partSize(name))
	s.pulls[name] = run
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		defer s.releaseUpload(name)
		ctx := WithActor(s.bg, "site:"+s.opt.Site)
		err := s.pull(ctx, run, name, from)
		s.siteMu.Lock()
		run.done, run.err, run.ended = true, err, s.now()
		s.siteMu.Unlock()
		if err != nil {
			s.log.Warn("image pull stopped", "image", name, "from", run.from, "bytes", run.bytes.Load(), "size", run.size, "err", err)
		}
		s.publishImage(context.WithoutCancel(ctx), name)
	}()
	return run, nil
}

// pull runs one pull of image name to its end.
func (s *Service) pull(ctx context.Context, run *pullRun, name, from string) error {
	img, err := s.st.Image(ctx, name)
	if err != nil {
		return fmt.Errorf("image %q: %w", name, err)
	}
	m, err := manifest.Decode(strings.NewReader(img.Manifest))
	if err != nil {
		return fmt.Errorf("image %q: manifest: %w", name, err)
	}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("image %q: manifest: %w", name, err)
	}
	src, err := s.pullSource(ctx, img, from)
	if err != nil {
		return err
	}
	s.siteMu.Lock()
	run.from, run.size = src.Site, img.CompressedSize
	s.siteMu.Unlock()
	have, err := s.provenPart(m)
	if err != nil {
		return err
	}
	run.bytes.Store(have)
	if err := s.checkSpace(ctx, name, img.CompressedSize-have); err != nil {
		return err
	}
	err = s.st.Update(ctx, func(t *store.Tx) error {
		return t.PutImageSite(ctx, s.siteRow(img, store.SitePulling, have, src.Site))
	})
	if err != nil {
		return err
	}
	s.publishImage(ctx, name)
	s.log.Info("image pull", "image", name, "from", src.Site, "offset", have, "size", img.CompressedSize)
	if have < img.CompressedSize {
		token, err := s.peerToken(ctx)
		if err != nil {
			return err
		}
		if err := s.fetchFrames(ctx, run, img, m, src, token, have); err != nil {
			return err
		}
	}
	n, sum, err := s.installPart(img)
	if err != nil {
		run.bytes.Store(0)
		s.recordPullBytes(ctx, img, 0)
		return err
	}
	err = s.st.Update(ctx, func(t *store.Tx) error {
		if err := t.PutImageSite(ctx, s.siteRow(img, store.SiteReady, n, src.Site)); err != nil {
			return err
		}
		return t.Audit(ctx, Actor(ctx), "image.pulled", name, fmt.Sprintf("from site %s: compressed %d bytes sha256 %s", src.Site, n, sum))
	})
	if err != nil {
		return err
	}
	s.setLocal(name, img.CompressedSHA256)
	s.log.Info("image pulled", "image", name, "from", src.Site, "compressed_size", n)
	return nil
}

// provenPart returns how many bytes of the image's .part file are whole frames (the
// pull writes only proven frames; a server killed inside a write may leave part of
// one, which is cut off here).
func (s *Service) provenPart(m *manifest.Manifest) (int64, error) {
	part := s.partFile(m.Name)
	have := s.partSize(m.Name)
	keep := frameFloor(m, have)
	if keep == have && have > 0 {
		return have, nil
	}
	if have == 0 {
		if err := os.WriteFile(part, nil, store.FileMode); err != nil {
			return 0, err
		}
		return 0, nil
	}
	if err := os.Truncate(part, keep); err != nil {
		return 0, err
	}
	return keep, nil
}

// frameFloor is the end of the last whole frame at or before offset n.
func frameFloor(m *manifest.Manifest, n int64) int64 {
	var end int64
	for _, c := range m.Chunks {
		if c.Frame+c.FrameSize > n {
			break
		}
		end = c.Frame + c.FrameSize
	}
	return end
}

// fetchFrames asks src for the packed file from offset have (a frame boundary) and
// appends each frame to the .part file once it decodes to its chunk's SHA-256.
func (s *Service) fetchFrames(ctx context.Context, run *pullRun, img store.Image, m *manifest.Manifest, src store.ImageSite,
	token string, have int64) error {
	// A peer whose answer stalls for peerSilence is given up on (the next pull
	// continues from the last proven frame).
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	silent := fmt.Errorf("peer site %s silent for %v", src.Site, peerSilence)
	watchdog := time.AfterFunc(peerSilence, func() { cancel(silent) })
	defer watchdog.Stop()
	resp, err := s.askPeer(ctx, img, src, token, have)
	if err != nil {
		return fmt.Errorf("image %q: peer site %s: %w", img.Name, src.Site, err)
	}
	defer resp.Body.Close()
	f, err := os.OpenFile(s.partFile(img.Name), os.O_WRONLY, store.FileMode)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(have, io.SeekStart); err != nil {
		return err
	}
	dec, err := zstimg.NewDecoder(m.ChunkSize, 1)
	if err != nil {
		return err
	}
	defer dec.Close()
	var frame, raw []byte
	last := time.Now()
	off := have
	for i := range m.Chunks {
		c := m.Chunks[i]
		if c.Frame < off {
			continue
		}
		if int64(cap(frame)) < c.FrameSize {
			frame = make([]byte, c.FrameSize)
		}
		frame = frame[:c.FrameSize]
		watchdog.Reset(peerSilence)
		if _, err := io.ReadFull(resp.Body, frame); err != nil {
			if ctx.Err() != nil {
				return errors.Join(fmt.Errorf("image %q: %w; %d proven bytes kept", img.Name, context.Cause(ctx), off), f.Sync())
			}
			return errors.Join(fmt.Errorf("image %q: peer site %s: answer ended inside chunk %d (bytes %d–%d of %d): %w; %d proven bytes kept: %w",
				img.Name, src.Site, i, c.Frame, c.Frame+c.FrameSize, img.CompressedSize, err, off, ErrPeerBytes), f.Sync())
		}
		if raw, err = zstimg.DecodeChunk(dec, m, i, frame, raw); err != nil {
			return errors.Join(fmt.Errorf("image %q: peer site %s: %w; %d proven bytes kept: %w", img.Name, src.Site, err, off, ErrPeerBytes),
				f.Sync())
		}
		if _, err := f.Write(frame); err != nil {
			return errors.Join(err, f.Truncate(off))
		}
		off += c.FrameSize
		run.bytes.Store(off)
		if time.Since(last) >= pullProgressEvery {
			last = time.Now()
			s.recordPullBytes(ctx, img, off)
		}
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	var extra [1]byte
	if n, _ := resp.Body.Read(extra[:]); n > 0 {
		return fmt.Errorf("image %q: peer site %s sent more than the %d bytes of the manifest: %w", img.Name, src.Site,
			img.CompressedSize, ErrPeerBytes)
	}
	return nil
}

// askPeer requests img's packed file from src, from offset have on, and checks that
// the answer is those bytes (checkPeerAnswer).
func (s *Service) askPeer(ctx context.Context, img store.Image, src store.ImageSite, token string, have int64) (*http.Response, error) {
	u := strings.TrimSuffix(src.URL, "/") + "/api/v1/peer/images/" + url.PathEscape(img.Name+".img.zst") +
		"?compressed_sha256=" + url.QueryEscape(img.CompressedSHA256)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	resp, err := s.peerHTTP.Do(req)
	if err != nil {
		return nil, err
	}
	if err := checkPeerAnswer(resp, have, img.CompressedSize); err != nil {
		resp.Body.Close()
		return nil, err
	}
	return resp, nil
}

// checkPeerAnswer accepts the answer to a request for the bytes from offset have of
// a file of size bytes: 206 with that Content-Range, or 200 with the whole file
// when have is 0.
func checkPeerAnswer(resp *http.Response, have, size int64) error {
	switch {
	case resp.StatusCode == http.StatusPartialContent:
		want := fmt.Sprintf("bytes %d-%d/%d", have, size-1, size)
		if got := resp.Header.Get("Content-Range"); got != want {
			return fmt.Errorf("answered Content-Range %q, want %q: %w", got, want, ErrPeerBytes)
		}
		return nil
	case resp.StatusCode == http.StatusOK && have == 0:
		if resp.ContentLength >= 0 && resp.ContentLength != size {
			return fmt.Errorf("answered %d bytes, the manifest says %d: %w", resp.ContentLength, size, ErrPeerBytes)
		}
		return nil
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	return fmt.Errorf("answered HTTP %d: %s", resp.StatusCode, bytes.TrimSpace(body))
}

// recordPullBytes records a running pull's progress (best effort: the .part file,
// not this row, is what a resumed pull starts from) and publishes it.
func (s *Service) recordPullBytes(ctx context.Context, img store.Image, n int64) {
	err := s.st.Update(ctx, func(t *store.Tx) error {
		return t.SetImageSiteBytes(ctx, s.opt.Site, img.Name, img.CompressedSHA256, n)
	})
	if err != nil && ctx.Err() == nil {
		s.log.Warn("record image pull progress", "image", img.Name, "err", err)
	}
	s.publishImage(ctx, img.Name)
}

// Close stops the pulls running in the background and waits for them (their
// .part files keep the proven bytes for the next start).
func (s *Service) Close() {
	s.bgStop()
	s.bgWG.Wait()
}
