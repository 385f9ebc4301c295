package fleet

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Scenario is what happens to one virtual board while it flashes.
type Scenario string

// The scenarios. Every one but BadCard must end verified; BadCard must end failed
// with the write error as its cause.
const (
	Normal  Scenario = "normal"  // nothing goes wrong
	Slow    Scenario = "slow"    // the card writes at Config.SlowRate bytes/s
	Flaky   Scenario = "flaky"   // the network cuts the board's connections (CutProxy)
	BadCard Scenario = "badcard" // the card fails its writes part way (a full backing store)
	Reboot  Scenario = "reboot"  // the board loses power mid-stream and boots again
)

// Scenarios lists every scenario in the order tables show them.
var Scenarios = []Scenario{Normal, Slow, Flaky, BadCard, Reboot}

// Expect is the outcome the scenario must end in.
func (s Scenario) Expect() Outcome {
	if s == BadCard {
		return Failed
	}
	return Verified
}

// Mix gives each scenario a share of the boards, in percent.
type Mix map[Scenario]float64

// ParseMix reads "normal=60,slow=10,flaky=10,badcard=10,reboot=10". Shares are
// percentages; whatever the listed shares leave of 100 goes to normal. An empty
// string means all normal.
func ParseMix(s string) (Mix, error) {
	m := Mix{}
	var sum float64
	for part := range strings.SplitSeq(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("mix %q: %q is not scenario=percent", s, part)
		}
		sc := Scenario(strings.TrimSpace(name))
		if !slices.Contains(Scenarios, sc) {
			return nil, fmt.Errorf("mix %q: unknown scenario %q (want one of %v)", s, name, Scenarios)
		}
		if _, dup := m[sc]; dup {
			return nil, fmt.Errorf("mix %q: scenario %q given twice", s, sc)
		}
		pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(val), "%"), 64)
		if err != nil || pct < 0 || pct > 100 {
			return nil, fmt.Errorf("mix %q: share of %q is %q, want 0 to 100", s, sc, val)
		}
		m[sc] = pct
		sum += pct
	}
	if sum > 100.0001 {
		return nil, fmt.Errorf("mix %q: shares add up to %g%%, more than 100", s, sum)
	}
	if _, ok := m[Normal]; !ok {
		m[Normal] = max(0, 100-sum)
	} else if sum < 99.9999 {
		return nil, fmt.Errorf("mix %q: shares add up to %g%%, want 100 when normal is given", s, sum)
	}
	return m, nil
}

// String writes the mix in the form ParseMix reads.
func (m Mix) String() string {
	var parts []string
	for _, sc := range Scenarios {
		if p, ok := m[sc]; ok && p > 0 {
			parts = append(parts, fmt.Sprintf("%s=%g", sc, p))
		}
	}
	return strings.Join(parts, ",")
}

// Assign deals scenarios to n boards: the counts follow the shares by largest
// remainder (so 10% of 20 boards is exactly 2), and the order is shuffled by rng.
func (m Mix) Assign(n int, rng *rand.Rand) []Scenario {
	type share struct {
		sc   Scenario
		n    int
		frac float64
	}
	var total float64
	for _, p := range m {
		total += p
	}
	if total == 0 || n == 0 {
		return slices.Repeat([]Scenario{Normal}, n)
	}
	var shares []share
	given := 0
	for _, sc := range Scenarios {
		exact := m[sc] / total * float64(n)
		k := int(exact)
		shares = append(shares, share{sc, k, exact - float64(k)})
		given += k
	}
	order := slices.Clone(shares)
	slices.SortStableFunc(order, func(a, b share) int {
		switch {
		case a.frac > b.frac:
			return -1
		case a.frac < b.frac:
			return 1
		}
		return 0
	})
	for i := 0; given < n; i++ {
		for j := range shares {
			if shares[j].sc == order[i%len(order)].sc {
				shares[j].n++
			}
		}
		given++
	}
	out := make([]Scenario, 0, n)
	for _, s := range shares {
		out = append(out, slices.Repeat([]Scenario{s.sc}, s.n)...)
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}
