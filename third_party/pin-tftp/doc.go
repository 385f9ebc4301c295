// Package tftp is github.com/pin/tftp/v3 v3.1.0 (MIT licence, LICENSE in this directory;
// https://github.com/pin/tftp, tag v3.1.0), used by rpi-deploy through a replace in its
// go.mod, with changes to how a transfer's own UDP socket is used (PATCHES.md lists
// them; each sits between "rpi-deploy patch begin/end" comments):
//
//   - On Linux a server's transfer socket is connected to the client that asked
//     (connect(2); transfer.go, transfer_linux.go): the kernel delivers only that
//     client's datagrams, a send carries no address and needs no route lookup, and it
//     is read and written with raw send/recv system calls. The read deadline pin sets
//     for each datagram reaches the runtime's poller only when a read has to wait.
//     ICMP errors that a connected socket reports (an unconnected one does not) are
//     skipped, so forged ones cannot end a transfer.
//   - Other sockets (pin's client, a peer that cannot be connected to) are read and
//     written with raw recvfrom/sendto system calls (MSG_DONTWAIT, inside
//     syscall.RawConn Read/Write; rawio_linux.go) instead of net.UDPConn's
//     ReadFromUDP/WriteToUDP.
//   - The sender takes the ACK of the block it sent without parsePacket's allocation.
//
// Everything else — request loop, option negotiation, retries, hooks, and the v3.1.0
// bugs server/tftp works around — is upstream's, file for file.
//
// Why the raw calls: each of net.UDPConn's calls went through the Go runtime's
// entersyscall, which wakes the runtime's monitor thread (sysmon) whenever it is in
// its deep sleep — which it enters each time every P is idle, i.e. between any two
// blocks of a lock-step transfer. On a quiet machine that cost one 30 MB transfer
// about a fifth of its time: medians of 1.006 and 0.991 s against dnsmasq's 0.845 and
// 0.830 s (ratios 1.19), and 0.819 and 0.673 s against 0.833 and 0.676 s (0.983,
// 0.996) with the raw calls, in scripts/bench/40-netboot.sh (docs/netboot.md
// "Per-packet cost"). Upstream's API has no way to reach a transfer's socket, hence
// the copy.
package tftp
