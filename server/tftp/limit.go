package tftp

import (
	"net/netip"
	"sync"
)

// slots counts running transfers, in all and per client address.
type slots struct {
	mu        sync.Mutex
	max, each int
	total     int
	per       map[netip.Addr]int
}

func newSlots(max, each int) *slots {
	return &slots{max: max, each: each, per: map[netip.Addr]int{}}
}

// take reserves a slot for a transfer to ip; false when a cap is reached. Addresses
// the DHCP leases do not know (known false) share three quarters of max: the last
// quarter is kept for boards, so that a flood from spoofed addresses cannot take it.
func (s *slots) take(ip netip.Addr, known bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := s.max
	if !known {
		limit = s.max - s.max/4
	}
	if s.total >= limit || s.per[ip] >= s.each {
		return false
	}
	s.total++
	s.per[ip]++
	return true
}

func (s *slots) release(ip netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.per[ip]--; s.per[ip] <= 0 {
		delete(s.per, ip)
	}
}

// running is the number of transfers holding a slot.
func (s *slots) running() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
