package events

import (
	"regexp"
	"slices"
	"testing"
)

// TestCursorOnlySite: a cursor that follows one site reads the events whose data
// names that site and the events of no one site (batches, images, …), never the
// other sites' boards, deployments and retries; one that follows no site reads all.
func TestCursorOnlySite(t *testing.T) {
	b := New(0, 0)
	type obj map[string]any
	b.Publish(BoardChanged, obj{"serial": "a", "site": "north"})
	b.Publish(DeploymentCreated, obj{"id": 1, "serial": "b", "site": "south"})
	b.Publish(BatchChanged, obj{"id": 7})
	b.Publish(DeploymentProgress, obj{"id": 2, "serial": "a", "site": "north"})
	b.Publish(HelloRetry, obj{"serial": "c", "reason": "busy", "site": "south"})
	b.Publish(BoardNetboot, obj{"serial": "d", "kind": "dhcp.offer", "site": "south"})
	b.Publish(ImageChanged, obj{"name": "img", "site": "ignored: not a site's event"})
	ids := regexp.MustCompile(`(?m)^id: (\d+)$`)
	for _, tc := range []struct {
		site string
		want []string
	}{
		{"north", []string{"1", "3", "4", "7"}},
		{"south", []string{"2", "3", "5", "6", "7"}},
		{"", []string{"1", "2", "3", "4", "5", "6", "7"}},
	} {
		cur, _ := b.Follow(0)
		cur.next = 1
		cur.OnlySite(tc.site)
		buf, lost := cur.Read(nil, 0)
		var got []string
		for _, m := range ids.FindAllStringSubmatch(string(buf), -1) {
			got = append(got, m[1])
		}
		if lost || !slices.Equal(got, tc.want) {
			t.Errorf("site %q read events %v (lost %v), want %v", tc.site, got, lost, tc.want)
		}
	}
}
