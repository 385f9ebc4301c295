package dhcp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"
)

// Lease is one address bound to one MAC.
type Lease struct {
	MAC      string     // aa:bb:cc:dd:ee:ff, lower case; the key
	IP       netip.Addr // unique among leases
	Serial   string     // 8 hex digits from option 97 when the client ever sent it
	Kind     string     // KindBootloader, KindAgent or KindOther (of the last request)
	Hostname string     // option 12 of the last request, if any
	Expires  time.Time

	// stored (the pool's own mark, in its table): this is what the LeaseStore
	// holds, written or loaded; only such a lease is reused (pool.reusable).
	stored bool
}

// LeaseStore persists leases (full mode). The Server loads all of them once at start
// and writes every change through; it is the only writer.
type LeaseStore interface {
	// LoadLeases returns every stored lease, expired ones included.
	LoadLeases(ctx context.Context) ([]Lease, error)
	// PutLease stores l under l.MAC, replacing that MAC's lease and any other lease
	// that holds l.IP.
	PutLease(ctx context.Context, l Lease) error
	// DeleteLease forgets the lease of mac (no error if there is none).
	DeleteLease(ctx context.Context, mac string) error
}

// Reservation pins an address to a board, by MAC or by serial (8 hex digits).
type Reservation struct {
	MAC    string     `json:"mac,omitempty"`
	Serial string     `json:"serial,omitempty"`
	IP     netip.Addr `json:"ip"`
}

// ErrNoAddress means the range has no free address left.
var ErrNoAddress = errors.New("no free address in the DHCP range")

// pool hands out addresses of one range; it keeps all leases in memory and writes
// through to the store. Its methods are safe for concurrent use.
type pool struct {
	mu       sync.Mutex
	first    netip.Addr
	last     netip.Addr
	byMAC    map[string]Lease
	byIP     map[netip.Addr]string // ip -> mac of leases and offers
	offers   map[string]Lease      // mac -> offer held until Expires
	declined map[netip.Addr]time.Time
	reserved map[netip.Addr]Reservation
	store    LeaseStore
	hold     time.Duration // how long an offered address is kept for its client
	// maxOffers caps len(offers); at the cap the oldest offer (of a non-board first)
	// makes room (0: no cap).
	maxOffers int
	// cursor is where the search for an untaken address starts: every address of the
	// range below it is held by a lease or an offer (or was unusable when the search
	// passed it), so a new client's offer need not walk past every lease again (with
	// thousands of leases that walk, under mu, was most of an offer's time). An
	// address let go below it moves it down (unmap): the lowest free address is still
	// the one handed out, as a flood's dropped offers are handed out again.
	cursor netip.Addr
	// reuse is Options.LeaseReuse (0: off): a lease marked stored is reused, never
	// one whose write failed.
	reuse time.Duration
}

func newPool(ctx context.Context, first, last netip.Addr, res []Reservation, store LeaseStore) (*pool, error) {
	p := &pool{
		first: first, last: last,
		byMAC: map[string]Lease{}, byIP: map[netip.Addr]string{}, offers: map[string]Lease{},
		declined: map[netip.Addr]time.Time{}, reserved: map[netip.Addr]Reservation{},
		store: store, hold: DefaultOfferHold, cursor: first,
	}
	for _, r := range res {
		p.reserved[r.IP] = r
	}
	if store != nil {
		ls, err := store.LoadLeases(ctx)
		if err != nil {
			return nil, fmt.Errorf("load leases: %w", err)
		}
		for _, l := range ls {
			l.stored = true
			p.byMAC[l.MAC] = l
			p.byIP[l.IP] = l.MAC
		}
	}
	return p, nil
}

func (p *pool) inRange(ip netip.Addr) bool {
	return ip.Is4() && p.first.Compare(ip) <= 0 && ip.Compare(p.last) <= 0
}

// reservationFor returns the reserved address of a board, if any.
func (p *pool) reservationFor(mac, serial string) (netip.Addr, bool) {
	for ip, r := range p.reserved {
		if (r.MAC != "" && r.MAC == mac) || (r.Serial != "" && serial != "" && r.Serial == serial) {
			return ip, true
		}
	}
	return netip.Addr{}, false
}

// usableBy says whether ip may be given to mac now.
func (p *pool) usableBy(ip netip.Addr, mac, serial string, now time.Time) bool {
	if r, ok := p.reserved[ip]; ok {
		return (r.MAC != "" && r.MAC == mac) || (r.Serial != "" && r.Serial == serial)
	}
	if !p.inRange(ip) {
		return false
	}
	if t, ok := p.declined[ip]; ok && now.Before(t) {
		return false
	}
	holder, ok := p.byIP[ip]
	if !ok || holder == mac {
		return true
	}
	if l, ok := p.byMAC[holder]; ok && l.IP == ip && now.Before(l.Expires) {
		return false
	}
	if o, ok := p.offers[holder]; ok && o.IP == ip && now.Before(o.Expires) {
		return false
	}
	return true // the holder's lease or offer has expired
}

// offer picks an address for mac (its reservation, its lease, the one it asks for, or
// the first free one) and holds it for the client for p.hold. kind is the client's
// (KindBootloader, KindAgent, KindOther): when the offers are at p.maxOffers, an old
// offer of a non-board client makes room first.
func (p *pool) offer(mac, serial, kind string, want netip.Addr, now time.Time) (netip.Addr, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, again := p.offers[mac]; !again && p.maxOffers > 0 && len(p.offers) >= p.maxOffers {
		p.makeRoom(now)
	}
	ip, err := p.pick(mac, serial, want, now)
	if err != nil {
		return ip, err
	}
	if o, ok := p.offers[mac]; ok && p.byIP[o.IP] == mac {
		p.unmap(o.IP)
	}
	p.offers[mac] = Lease{MAC: mac, IP: ip, Serial: serial, Kind: kind, Expires: now.Add(p.hold)}
	p.byIP[ip] = mac
	return ip, nil
}

// makeRoom drops expired offers and, if the offers are still at the cap, the oldest
// one of a client that is not a board (else the oldest of all). Called with p.mu held.
func (p *pool) makeRoom(now time.Time) {
	var oldest, oldestOther string
	for mac, o := range p.offers {
		if !now.Before(o.Expires) {
			p.dropOffer(mac)
			continue
		}
		if oldest == "" || o.Expires.Before(p.offers[oldest].Expires) {
			oldest = mac
		}
		if o.Kind != KindBootloader && o.Kind != KindAgent && (oldestOther == "" || o.Expires.Before(p.offers[oldestOther].Expires)) {
			oldestOther = mac
		}
	}
	if len(p.offers) < p.maxOffers {
		return
	}
	if oldestOther != "" {
		p.dropOffer(oldestOther)
	} else if oldest != "" {
		p.dropOffer(oldest)
	}
}

// dropOffer forgets mac's offer and frees its address unless mac holds it by lease.
// Called with p.mu held.
func (p *pool) dropOffer(mac string) {
	o, ok := p.offers[mac]
	if !ok {
		return
	}
	delete(p.offers, mac)
	if p.byIP[o.IP] == mac {
		if l, ok := p.byMAC[mac]; ok && l.IP == o.IP {
			return
		}
		p.unmap(o.IP)
	}
}

// heldByBoard says whether mac holds an offer or a lease made for a Pi bootloader or
// the agent.
func (p *pool) heldByBoard(mac string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	board := func(k string) bool { return k == KindBootloader || k == KindAgent }
	if o, ok := p.offers[mac]; ok && board(o.Kind) {
		return true
	}
	l, ok := p.byMAC[mac]
	return ok && board(l.Kind)
}

func (p *pool) pick(mac, serial string, want netip.Addr, now time.Time) (netip.Addr, error) {
	if ip, ok := p.reservationFor(mac, serial); ok {
		return ip, nil
	}
	if o, ok := p.offers[mac]; ok && p.usableBy(o.IP, mac, serial, now) {
		return o.IP, nil
	}
	if l, ok := p.byMAC[mac]; ok && p.usableBy(l.IP, mac, serial, now) {
		return l.IP, nil
	}
	if want.IsValid() && p.usableBy(want, mac, serial, now) {
		return want, nil
	}
	if ip, ok := p.untaken(mac, serial, now); ok {
		return ip, nil
	}
	// Everything was handed out once: reuse the first address whose lease has expired.
	for ip := p.first; ip.IsValid() && ip.Compare(p.last) <= 0; ip = ip.Next() {
		if p.usableBy(ip, mac, serial, now) {
			return ip, nil
		}
	}
	return netip.Addr{}, ErrNoAddress
}

// unmap forgets who holds ip and moves the cursor down to it. Called with p.mu held.
func (p *pool) unmap(ip netip.Addr) {
	delete(p.byIP, ip)
	if p.inRange(ip) && ip.Less(p.cursor) {
		p.cursor = ip
	}
}

// untaken returns the first address from the cursor on (then from the start of the
// range up to the cursor: one passed while unusable, a declined address, may be free
// again) that no lease or offer holds, and moves the cursor past it. Called with p.mu
// held.
func (p *pool) untaken(mac, serial string, now time.Time) (netip.Addr, bool) {
	scan := func(from, to netip.Addr) (netip.Addr, bool) { // [from, to]
		for ip := from; ip.IsValid() && ip.Compare(to) <= 0; ip = ip.Next() {
			if _, taken := p.byIP[ip]; !taken && p.usableBy(ip, mac, serial, now) {
				return ip, true
			}
		}
		return netip.Addr{}, false
	}
	ip, ok := scan(p.cursor, p.last)
	if !ok && p.first.Less(p.cursor) {
		ip, ok = scan(p.first, p.cursor.Prev())
	}
	if ok {
		p.cursor = ip.Next()
		if !p.inRange(p.cursor) {
			p.cursor = p.first
		}
	}
	return ip, ok
}

// bind makes ip the lease of mac if it may have it; ok is false when the client must
// be refused (NAK). The table in memory is updated under the lock, the store after it,
// so that DISCOVERs are not held up by database writes; if the write fails the client
// gets no ACK and asks again (the table may be ahead of the store, never behind it).
// The lease returned is the one bound: l, or mac's stored lease, with its earlier
// Expires, when that is reused (p.reuse) and nothing is written. With wait false, a
// bind that needs a write returns errWouldWait and changes nothing.
func (p *pool) bind(ctx context.Context, l Lease, now time.Time, wait bool) (bound Lease, ok bool, err error) {
	change := wait || p.store == nil // without a store, binding is all memory
	bound, write, ok := p.bindMemory(l, now, change)
	if write && !change {
		return l, false, errWouldWait
	}
	if !ok || !write || p.store == nil {
		return bound, ok, nil
	}
	if err := p.store.PutLease(ctx, l); err != nil {
		return l, false, fmt.Errorf("store lease %s %s: %w", l.MAC, l.IP, err)
	}
	p.mu.Lock()
	if p.byMAC[l.MAC] == l { // not bound again meanwhile
		l.stored = true
		p.byMAC[l.MAC] = l
	}
	p.mu.Unlock()
	return l, true, nil
}

// bindMemory binds l in the table; write is false when mac's stored lease is
// reused instead (and returned). With change false it only tells: a bind that would
// need a write leaves the table as it is.
func (p *pool) bindMemory(l Lease, now time.Time, change bool) (bound Lease, write, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r, ok := p.reservationFor(l.MAC, l.Serial); ok && r != l.IP {
		return l, false, false // the board has another (reserved) address
	}
	if !p.usableBy(l.IP, l.MAC, l.Serial, now) {
		return l, false, false
	}
	if old, ok := p.byMAC[l.MAC]; ok && p.reusable(old, l, now) {
		delete(p.offers, l.MAC)
		p.byIP[l.IP] = l.MAC
		return old, false, true
	}
	if !change {
		return l, true, true
	}
	if old, ok := p.byMAC[l.MAC]; ok && p.byIP[old.IP] == l.MAC {
		p.unmap(old.IP)
	}
	if other, ok := p.byIP[l.IP]; ok && other != l.MAC {
		delete(p.byMAC, other)
		delete(p.offers, other)
	}
	delete(p.offers, l.MAC)
	p.byMAC[l.MAC] = l
	p.byIP[l.IP] = l.MAC
	return l, true, true
}

// reusable says whether old, mac's lease in the table, answers the REQUEST for l
// without a write: it is what the store holds, it binds the same as l, and it was
// written less than p.reuse ago (l.Expires is now plus the lease time). Called with
// p.mu held.
func (p *pool) reusable(old, l Lease, now time.Time) bool {
	if p.reuse <= 0 || !old.stored || old.IP != l.IP || old.Serial != l.Serial || old.Kind != l.Kind || old.Hostname != l.Hostname {
		return false
	}
	age := l.Expires.Sub(old.Expires) // negative if the lease time was shortened since
	return age >= 0 && age < p.reuse && old.Expires.After(now)
}

// lease returns mac's current lease.
func (p *pool) lease(mac string) (Lease, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	l, ok := p.byMAC[mac]
	return l, ok
}

// release forgets mac's lease if it holds ip.
func (p *pool) release(ctx context.Context, mac string, ip netip.Addr) error {
	p.mu.Lock()
	l, ok := p.byMAC[mac]
	if ok && l.IP == ip {
		delete(p.byMAC, mac)
		if p.byIP[ip] == mac {
			p.unmap(ip)
		}
	}
	p.mu.Unlock()
	if !ok || l.IP != ip || p.store == nil {
		return nil
	}
	if err := p.store.DeleteLease(ctx, mac); err != nil {
		return fmt.Errorf("delete lease %s: %w", mac, err)
	}
	return nil
}

// decline marks ip as in use by someone we do not know (DHCPDECLINE) for d.
func (p *pool) decline(ctx context.Context, mac string, ip netip.Addr, until time.Time) error {
	p.mu.Lock()
	p.declined[ip] = until
	delete(p.offers, mac)
	p.mu.Unlock()
	return p.release(ctx, mac, ip)
}

// forgetOffer drops mac's held offer (the client chose another server).
func (p *pool) forgetOffer(mac string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dropOffer(mac)
}

func ip4(a netip.Addr) net.IP { b := a.As4(); return net.IP(b[:]) }

func addrOf(ip net.IP) netip.Addr {
	if v4 := ip.To4(); v4 != nil {
		a, _ := netip.AddrFromSlice(v4)
		return a
	}
	return netip.Addr{}
}

// leaseByIP returns the unexpired lease that holds ip.
func (p *pool) leaseByIP(ip netip.Addr, now time.Time) (Lease, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	mac, ok := p.byIP[ip]
	if !ok {
		return Lease{}, false
	}
	l, ok := p.byMAC[mac]
	if !ok || l.IP != ip || !now.Before(l.Expires) {
		return Lease{}, false
	}
	return l, true
}
