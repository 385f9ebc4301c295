package api

import (
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gin-gonic/gin"
)

// Metrics are the counters /metrics exposes beside what it reads from the store.
type Metrics struct {
	bytesServed atomic.Int64
	streams     atomic.Int64
	downloads   atomic.Int64
	// streamWrites counts the writes of events to event streams (sendShared).
	streamWrites atomic.Int64

	mu      sync.Mutex
	hellos  map[string]int64 // by action (or "error")
	buckets []float64        // allocation latency bucket bounds, seconds
	counts  []int64          // per bucket (cumulative at render)
	sum     float64
	n       int64
}

// NewMetrics returns empty metrics.
func NewMetrics() *Metrics {
	b := []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5}
	return &Metrics{hellos: map[string]int64{}, buckets: b, counts: make([]int64, len(b))}
}

// StreamsInFlight is how many image downloads are running.
func (m *Metrics) StreamsInFlight() int64 { return m.streams.Load() }

// BytesServed is the image bytes sent so far.
func (m *Metrics) BytesServed() int64 { return m.bytesServed.Load() }

func (m *Metrics) observeHello(d time.Duration, action string, err error) {
	if err != nil {
		action = "error"
	}
	s := d.Seconds()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.hellos[action]++
	m.sum += s
	m.n++
	for i, b := range m.buckets {
		if s <= b {
			m.counts[i]++
			break
		}
	}
}

// metrics: GET /metrics, Prometheus text format 0.0.4.
func (a *API) metrics(c *gin.Context) {
	var b strings.Builder
	m := a.Metrics
	site, good := querySite(c)
	if !good {
		return
	}
	counts, err := a.svc.DeploymentCounts(c.Request.Context(), site)
	if err != nil {
		failErr(c, err)
		return
	}
	byState := map[string]int64{"open": 0, "verified": 0, "failed": 0, "abandoned": 0}
	for state, n := range counts {
		byState[state] = n
	}
	fmt.Fprintf(&b, "# HELP rpideploy_deployments Deployments by state.\n# TYPE rpideploy_deployments gauge\n")
	for _, s := range sortedKeys(byState) {
		fmt.Fprintf(&b, "rpideploy_deployments{state=%q} %d\n", s, byState[s])
	}
	fmt.Fprintf(&b, "# HELP rpideploy_image_bytes_served_total Image bytes sent to clients.\n# TYPE rpideploy_image_bytes_served_total counter\nrpideploy_image_bytes_served_total %d\n", m.bytesServed.Load())
	fmt.Fprintf(&b, "# HELP rpideploy_image_downloads_total Image downloads started.\n# TYPE rpideploy_image_downloads_total counter\nrpideploy_image_downloads_total %d\n", m.downloads.Load())
	fmt.Fprintf(&b, "# HELP rpideploy_image_streams_in_flight Image downloads running now.\n# TYPE rpideploy_image_streams_in_flight gauge\nrpideploy_image_streams_in_flight %d\n", m.streams.Load())
	fmt.Fprintf(&b, "# HELP rpideploy_event_subscribers Event stream clients connected.\n# TYPE rpideploy_event_subscribers gauge\nrpideploy_event_subscribers %d\n", len(a.streams))
	fmt.Fprintf(&b, "# HELP rpideploy_event_stream_writes_total Writes of events to event streams (one carries every event since the stream's last).\n# TYPE rpideploy_event_stream_writes_total counter\nrpideploy_event_stream_writes_total %d\n", m.streamWrites.Load())
	if a.opt.EventRelay != nil {
		pending, dropped, unreachable := a.opt.EventRelay()
		fmt.Fprintf(&b, "# HELP rpideploy_event_relay_pending Events waiting to be written to the shared database.\n# TYPE rpideploy_event_relay_pending gauge\nrpideploy_event_relay_pending %d\n", pending)
		fmt.Fprintf(&b, "# HELP rpideploy_event_relay_dropped_total Events dropped while the database was unreachable.\n# TYPE rpideploy_event_relay_dropped_total counter\nrpideploy_event_relay_dropped_total %d\n", dropped)
		fmt.Fprintf(&b, "# HELP rpideploy_event_relay_unreachable 1 when the relay's last try to reach the database failed.\n# TYPE rpideploy_event_relay_unreachable gauge\nrpideploy_event_relay_unreachable %d\n", b2i(unreachable))
	}
	if a.opt.Conns != nil {
		st := a.opt.Conns.Stats()
		fmt.Fprintf(&b, "# HELP rpideploy_http_connections HTTP connections open, and of them idle (no request in progress).\n# TYPE rpideploy_http_connections gauge\nrpideploy_http_connections{state=\"open\"} %d\nrpideploy_http_connections{state=\"idle\"} %d\n", st.Open, st.Idle)
		fmt.Fprintf(&b, "# HELP rpideploy_http_connections_refused_total HTTP connections refused: per_source (429) or max (503).\n# TYPE rpideploy_http_connections_refused_total counter\nrpideploy_http_connections_refused_total{reason=\"per_source\"} %d\nrpideploy_http_connections_refused_total{reason=\"max\"} %d\n", st.RefusedPerSource, st.RefusedMax)
		fmt.Fprintf(&b, "# HELP rpideploy_http_connections_reclaimed_total Idle HTTP connections closed to make room.\n# TYPE rpideploy_http_connections_reclaimed_total counter\nrpideploy_http_connections_reclaimed_total %d\n", st.Reclaimed)
	}
	m.mu.Lock()
	fmt.Fprintf(&b, "# HELP rpideploy_hellos_total Agent hellos by answer.\n# TYPE rpideploy_hellos_total counter\n")
	for _, k := range sortedKeys(m.hellos) {
		fmt.Fprintf(&b, "rpideploy_hellos_total{action=%q} %d\n", k, m.hellos[k])
	}
	fmt.Fprintf(&b, "# HELP rpideploy_allocation_seconds Time to answer a hello (allocation transaction).\n# TYPE rpideploy_allocation_seconds histogram\n")
	var cum int64
	for i, bound := range m.buckets {
		cum += m.counts[i]
		fmt.Fprintf(&b, "rpideploy_allocation_seconds_bucket{le=\"%g\"} %d\n", bound, cum)
	}
	fmt.Fprintf(&b, "rpideploy_allocation_seconds_bucket{le=\"+Inf\"} %d\nrpideploy_allocation_seconds_sum %g\nrpideploy_allocation_seconds_count %d\n", m.n, m.sum, m.n)
	m.mu.Unlock()
	c.Data(http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", []byte(b.String()))
}

func sortedKeys[V any](m map[string]V) []string {
	k := make([]string, 0, len(m))
	for s := range m {
		k = append(k, s)
	}
	sort.Strings(k)
	return k
}

// b2i is 1 for true, 0 for false.
func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}
