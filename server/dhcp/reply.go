package dhcp

import (
	"net"
	"sync"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// newReply is dhcpv4.NewReplyFromRequest(req, dhcpv4.WithMessageType(mt)) — the
// same message: opcode, hardware type and address, xid, flags and giaddr from req,
// options 82 and 61 copied — without the transaction ID that NewReplyFromRequest
// draws first (random bytes under a context with a timeout: a timer made and
// stopped per reply) and then overwrites with req's. -memprofile of
// BenchmarkOfferWithLeases: 14 of an offer's 38 allocations were that and the
// modifier closures. The message comes from replies: one the Server has sent and
// given back (releaseReply), with its options map, or a new one.
func newReply(req *dhcpv4.DHCPv4, mt dhcpv4.MessageType) *dhcpv4.DHCPv4 {
	op := dhcpv4.OpcodeBootReply
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		op = dhcpv4.OpcodeBootRequest
	}
	d := replies.Get().(*dhcpv4.DHCPv4)
	opts := d.Options
	clear(opts)
	*d = dhcpv4.DHCPv4{
		OpCode:        op,
		HWType:        req.HWType,
		ClientHWAddr:  req.ClientHWAddr,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		Options:       opts,
	}
	for _, o := range [...]uint8{dhcpv4.OptionRelayAgentInformation.Code(), dhcpv4.OptionClientIdentifier.Code()} {
		if v, ok := req.Options[o]; ok {
			opts[o] = v // what UpdateOption(OptGeneric(o, v)) stores
		}
	}
	opts[dhcpv4.OptionDHCPMessageType.Code()] = messageTypes[mt]
	return d
}

// replies are reply messages (*dhcpv4.DHCPv4) to fill again: a reply and its
// options map were two of an offer's largest allocations.
var replies = sync.Pool{New: func() any {
	return &dhcpv4.DHCPv4{Options: make(dhcpv4.Options, 16)} // an offer to a Pi carries 13 options
}}

// releaseReply gives m back to newReply once it has been sent; whoever gives it
// back must hold nothing of it any more.
func releaseReply(m *dhcpv4.DHCPv4) { replies.Put(m) }

// option is one option's code and its value as the library encodes it.
type option struct {
	code  uint8
	value []byte
}

// encodeOptions encodes opts with the library once, for setOptions to put into
// many replies: an option's value the same in every reply is not encoded (and
// allocated) per reply.
func encodeOptions(opts ...dhcpv4.Option) []option {
	out := make([]option, len(opts))
	for i, o := range opts {
		v := o.Value.ToBytes()
		out[i] = option{code: o.Code.Code(), value: v[:len(v):len(v)]}
	}
	return out
}

// setOptions sets opts in m, as UpdateOption does. The values are shared by every
// message they are set in: nothing writes into a message's option value, and an
// append to one copies it (its capacity is its length).
func setOptions(m *dhcpv4.DHCPv4, opts []option) {
	for _, o := range opts {
		m.Options[o.code] = o.value
	}
}

// messageTypes is option 53's value for each message type, as the library encodes it.
var messageTypes = func() (t [256][]byte) {
	for i := range t {
		t[i] = encodeOptions(dhcpv4.OptMessageType(dhcpv4.MessageType(i)))[0].value
	}
	return t
}()

// messageType is m.MessageType() without its allocation: option 53's one byte, or
// MessageTypeNone when it is missing or not one byte long.
func messageType(m *dhcpv4.DHCPv4) dhcpv4.MessageType {
	if v := m.Options[dhcpv4.OptionDHCPMessageType.Code()]; len(v) == 1 {
		return dhcpv4.MessageType(v[0])
	}
	return dhcpv4.MessageTypeNone
}
