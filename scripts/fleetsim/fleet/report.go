package fleet

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Summary is the fleet at one moment: how many boards are in each state.
type Summary struct {
	Elapsed time.Duration
	Boards  int
	// States counts boards by state: waiting (not powered on), off (rebooting),
	// the server's phase of a running board (hello, streaming, …; "booting" before
	// the server knows it), and the ends (verified, failed, stuck, …).
	States  map[string]int
	Reboots int   // power cuts so far
	Cuts    int   // connections the flaky network cut so far
	Written int64 // bytes the server reports streamed, summed over running boards
}

// stateOrder is the order Line prints states in.
var stateOrder = []string{"waiting", "booting", "hello", "streaming", "verifying", "naming", "commit", "rebooting", "off",
	string(Verified), string(Failed), string(Stuck), string(BadVerified), string(Canceled), string(SimError)}

// Line renders the summary as one line of text.
func (s Summary) Line() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%6.1fs %d boards:", s.Elapsed.Seconds(), s.Boards)
	seen := map[string]bool{}
	for _, k := range stateOrder {
		seen[k] = true
		if n := s.States[k]; n > 0 {
			fmt.Fprintf(&b, " %s %d", k, n)
		}
	}
	var rest []string
	for k := range s.States {
		if !seen[k] {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range rest {
		fmt.Fprintf(&b, " %s %d", k, s.States[k])
	}
	if s.Reboots > 0 || s.Cuts > 0 {
		fmt.Fprintf(&b, " (power cuts %d, connections cut %d)", s.Reboots, s.Cuts)
	}
	return b.String()
}

func (f *Fleet) summary() Summary {
	s := Summary{Elapsed: time.Since(f.start), Boards: len(f.Boards), States: map[string]int{}}
	for _, b := range f.Boards {
		b.mu.Lock()
		local, proxy, reboots := b.local, b.proxy, b.Reboots
		b.mu.Unlock()
		if proxy != nil {
			s.Cuts += proxy.Cuts()
		}
		s.Reboots += reboots
		state := local
		switch local {
		case "ended":
			state = string(b.Outcome)
		case "running":
			state = "booting"
			if sb, ok := f.serverBoard(b.Serial); ok && sb.Phase != "" {
				state = sb.Phase
				if sb.Phase == "streaming" {
					s.Written += sb.Bytes
				}
			}
		}
		s.States[state]++
	}
	return s
}

// Report is the end of a run.
type Report struct {
	Boards   []*Board
	Elapsed  time.Duration // from the first power-on to the last end
	Expected int           // boards that ended as their scenario expects
}

// OK reports whether every board ended as its scenario expects: no board stuck,
// none verified that is not, every bad card failed with a cause and every other
// board verified.
func (r *Report) OK() bool { return r.Expected == len(r.Boards) }

// Count returns how many boards ended with o.
func (r *Report) Count(o Outcome) int {
	n := 0
	for _, b := range r.Boards {
		if b.Outcome == o {
			n++
		}
	}
	return n
}

// AllVerifiedAfter is when the last board that verified did so, from the start.
func (r *Report) AllVerifiedAfter() time.Duration {
	var d time.Duration
	for _, b := range r.Boards {
		if b.Outcome == Verified && !b.End.IsZero() {
			d = max(d, b.End.Sub(r.Boards[0].Start))
		}
	}
	return d
}

func (f *Fleet) report() *Report {
	r := &Report{Boards: f.Boards}
	var last time.Time
	for _, b := range f.Boards {
		if b.End.After(last) {
			last = b.End
		}
		if b.Outcome == b.Scenario.Expect() && (b.Outcome == Verified || b.Cause != "") {
			r.Expected++
		}
	}
	r.Elapsed = last.Sub(f.start)
	return r
}

// WriteTable writes the outcome table: one row per scenario, then one line per
// board that did not end verified.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "scenario\tboards\tverified\tfailed\tstuck\tverified-but-bad\tcanceled\tsim-error\texpected\tas expected\tmean time\t")
	for _, sc := range Scenarios {
		var n, ok int
		var sum time.Duration
		counts := map[Outcome]int{}
		for _, b := range r.Boards {
			if b.Scenario != sc {
				continue
			}
			n++
			counts[b.Outcome]++
			sum += b.Duration()
			if b.Outcome == sc.Expect() {
				ok++
			}
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%.1fs\t\n", sc, n, counts[Verified], counts[Failed], counts[Stuck],
			counts[BadVerified], counts[Canceled], counts[SimError], sc.Expect(), ok, (sum / time.Duration(n)).Seconds())
	}
	fmt.Fprintf(tw, "all\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t\t%d\t%.1fs\t\n", len(r.Boards), r.Count(Verified), r.Count(Failed), r.Count(Stuck),
		r.Count(BadVerified), r.Count(Canceled), r.Count(SimError), r.Expected, r.Elapsed.Seconds())
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, b := range r.Boards {
		if b.Outcome == Verified {
			continue
		}
		fmt.Fprintf(w, "board %03d %s %-8s %s: %s (log %s)\n", b.Index, b.Serial, b.Scenario, b.Outcome, b.Cause, b.LogPath)
	}
	return nil
}
