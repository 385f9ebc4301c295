package fleet

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseMix(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want Mix
	}{
		{"empty is all normal", "", Mix{Normal: 100}},
		{"rest goes to normal", "slow=10,flaky=20", Mix{Normal: 70, Slow: 10, Flaky: 20}},
		{"percent signs and spaces", " badcard = 5% , reboot=5 ", Mix{Normal: 90, BadCard: 5, Reboot: 5}},
		{"normal given, sums to 100", "normal=50,reboot=50", Mix{Normal: 50, Reboot: 50}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseMix(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseMix(%q) (-want +got):\n%s", tt.in, diff)
			}
			again, err := ParseMix(got.String())
			if err != nil || !cmp.Equal(got, again) {
				t.Errorf("String() %q does not parse back: %v %v", got.String(), again, err)
			}
		})
	}
}

func TestParseMixErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"slow", "not scenario=percent"},
		{"fast=10", `unknown scenario "fast"`},
		{"slow=10,slow=5", "given twice"},
		{"slow=abc", "want 0 to 100"},
		{"slow=-1", "want 0 to 100"},
		{"slow=60,flaky=60", "more than 100"},
		{"normal=50,slow=10", "want 100 when normal is given"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			_, err := ParseMix(tt.in)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseMix(%q) = %v, want an error with %q", tt.in, err, tt.want)
			}
		})
	}
}

func TestAssignFollowsShares(t *testing.T) {
	tests := []struct {
		mix  string
		n    int
		want map[Scenario]int
	}{
		{"slow=10,flaky=10,badcard=10,reboot=10", 20, map[Scenario]int{Normal: 12, Slow: 2, Flaky: 2, BadCard: 2, Reboot: 2}},
		{"slow=10,flaky=10,badcard=10,reboot=10", 100, map[Scenario]int{Normal: 60, Slow: 10, Flaky: 10, BadCard: 10, Reboot: 10}},
		// 33.3% of 4 is 1.33: the remainders decide who gets the last board.
		{"slow=33.3,flaky=33.3,reboot=33.4", 4, map[Scenario]int{Slow: 1, Flaky: 1, Reboot: 2}},
		{"reboot=100", 3, map[Scenario]int{Reboot: 3}},
		{"", 5, map[Scenario]int{Normal: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.mix, func(t *testing.T) {
			m, err := ParseMix(tt.mix)
			if err != nil {
				t.Fatal(err)
			}
			got := map[Scenario]int{}
			for _, sc := range m.Assign(tt.n, rand.New(rand.NewPCG(1, 2))) {
				got[sc]++
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Assign(%d) counts (-want +got):\n%s", tt.n, diff)
			}
		})
	}
}
