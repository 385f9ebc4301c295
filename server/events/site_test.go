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

// TestEventSite: the site is read from the event's data as json.Marshal wrote it;
// text inside a string value that looks like a site key is not taken for one.
func TestEventSite(t *testing.T) {
	b := New(0, 0)
	type obj map[string]any
	for _, tc := range []struct {
		name, typ string
		data      any
		want      string
	}{
		{"board", BoardChanged, obj{"serial": "a", "site": "hall-2"}, "hall-2"},
		{"look-alike in a detail after the site", BoardNetboot, struct {
			Kind   string `json:"kind"`
			Site   string `json:"site"`
			Detail string `json:"detail"`
		}{"tftp.file", "north", `x","site":"south`}, "north"},
		{"look-alike only", BoardNetboot, obj{"detail": `"site":"south"`}, ""},
		{"no site", DeploymentProgress, obj{"id": 3}, ""},
		{"not a site's event", BatchChanged, obj{"id": 3, "site": "north"}, ""},
	} {
		b.Publish(tc.typ, tc.data)
		b.mu.RLock()
		got := b.ring[b.seq%int64(len(b.ring))].Site
		b.mu.RUnlock()
		if got != tc.want {
			t.Errorf("%s: site %q, want %q", tc.name, got, tc.want)
		}
	}
}
