// Package progress reports how far a long byte-counting job has come: a redrawn bar on a
// terminal, plain periodic lines anywhere else (logs, pipes, test buffers).
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// Bar counts bytes done out of a total and prints them to a writer. A nil *Bar and a
// Bar with a nil writer are safe and print nothing.
type Bar struct {
	w        io.Writer
	label    string
	total    int64 // 0 when unknown
	tty      bool
	interval time.Duration

	done  atomic.Int64
	start time.Time
	stop  chan struct{}
	wg    sync.WaitGroup
	mu    sync.Mutex // serialises prints
}

// Start begins reporting on w: label is what is being done ("packing kxp2"), total the
// number of bytes expected (0 if unknown). On a terminal the bar is redrawn every 200 ms;
// elsewhere a line is printed at once and then every 5 s. Call Finish when done.
func Start(w io.Writer, label string, total int64) *Bar {
	b := &Bar{w: w, label: label, total: total, start: time.Now(), stop: make(chan struct{})}
	if w == nil {
		return b
	}
	b.tty = IsTerminal(w)
	b.interval = 5 * time.Second
	if b.tty {
		b.interval = 200 * time.Millisecond
	} else {
		b.print(false) // a log shows when the job started
	}
	b.wg.Add(1)
	go b.loop()
	return b
}

// IsTerminal reports whether w is a terminal: an *os.File that answers the terminal
// ioctls (Linux, macOS) or console mode calls (Windows). It is the one TTY check of
// rpi-image and rpi-agent.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Add records n more bytes done.
func (b *Bar) Add(n int64) {
	if b != nil {
		b.done.Add(n)
	}
}

// Done returns the bytes recorded so far.
func (b *Bar) Done() int64 {
	if b == nil {
		return 0
	}
	return b.done.Load()
}

func (b *Bar) loop() {
	defer b.wg.Done()
	t := time.NewTicker(b.interval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.print(false)
		}
	}
}

// Finish stops the reporting and prints a final line (ok=false marks a failed job).
func (b *Bar) Finish(ok bool) {
	if b == nil || b.w == nil {
		return
	}
	select {
	case <-b.stop:
		return // already finished
	default:
	}
	close(b.stop)
	b.wg.Wait()
	if ok {
		b.print(true)
	} else if b.tty {
		b.mu.Lock()
		fmt.Fprintln(b.w)
		b.mu.Unlock()
	}
}

func (b *Bar) print(final bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	done := b.done.Load()
	el := time.Since(b.start)
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(done) / s
	}
	var line string
	switch {
	case final:
		line = fmt.Sprintf("%s: done, %s in %s (%s/s)", b.label, Bytes(done), el.Round(100*time.Millisecond), Bytes(int64(rate)))
	case b.total > 0:
		pct := float64(done) / float64(b.total)
		eta := "?"
		if rate > 0 {
			eta = time.Duration(float64(b.total-done) / rate * float64(time.Second)).Round(time.Second).String()
		}
		line = fmt.Sprintf("%s: %5.1f%% %s/%s %s/s eta %s", b.label, 100*pct, Bytes(done), Bytes(b.total), Bytes(int64(rate)), eta)
		if b.tty {
			const width = 30
			n := min(int(pct*width), width)
			line = fmt.Sprintf("%s [%s%s]", line, strings.Repeat("=", n), strings.Repeat(" ", width-n))
		}
	default:
		line = fmt.Sprintf("%s: %s %s/s", b.label, Bytes(done), Bytes(int64(rate)))
	}
	if b.tty {
		fmt.Fprintf(b.w, "\r\033[K%s", line)
		if final {
			fmt.Fprintln(b.w)
		}
		return
	}
	fmt.Fprintln(b.w, line)
}

// Bytes formats n in binary units: "512 B", "3.4 MiB", "1.21 GiB".
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.2f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
