//go:build !purego

#include "textflag.h"

// Two SHA-256 states over the same message with the SHA extensions (SHA-NI). Each
// 64-byte block's message schedule is expanded once (SHA256MSG1, SHA256MSG2) and
// feeds the rounds of both states (SHA256RNDS2, two rounds each), interleaved so that
// the two chains of dependent round instructions run side by side.
//
// Registers:
//   X0        message words + round constants of the current four rounds (implicit
//             operand of SHA256RNDS2), shared by both states
//   X1, X2    state a: ABEF, CDGH        X9, X10   state a at the block's start
//   X11, X12  state b: ABEF, CDGH        X13, X14  state b at the block's start
//   X3…X6     the message schedule, four words each, used round-robin
//   X7        scratch                    X8        byte order mask
//   SI        next block                 DX        end of the blocks
//   AX        round constants

DATA k<>+0x00(SB)/4, $0x428a2f98
DATA k<>+0x04(SB)/4, $0x71374491
DATA k<>+0x08(SB)/4, $0xb5c0fbcf
DATA k<>+0x0c(SB)/4, $0xe9b5dba5
DATA k<>+0x10(SB)/4, $0x3956c25b
DATA k<>+0x14(SB)/4, $0x59f111f1
DATA k<>+0x18(SB)/4, $0x923f82a4
DATA k<>+0x1c(SB)/4, $0xab1c5ed5
DATA k<>+0x20(SB)/4, $0xd807aa98
DATA k<>+0x24(SB)/4, $0x12835b01
DATA k<>+0x28(SB)/4, $0x243185be
DATA k<>+0x2c(SB)/4, $0x550c7dc3
DATA k<>+0x30(SB)/4, $0x72be5d74
DATA k<>+0x34(SB)/4, $0x80deb1fe
DATA k<>+0x38(SB)/4, $0x9bdc06a7
DATA k<>+0x3c(SB)/4, $0xc19bf174
DATA k<>+0x40(SB)/4, $0xe49b69c1
DATA k<>+0x44(SB)/4, $0xefbe4786
DATA k<>+0x48(SB)/4, $0x0fc19dc6
DATA k<>+0x4c(SB)/4, $0x240ca1cc
DATA k<>+0x50(SB)/4, $0x2de92c6f
DATA k<>+0x54(SB)/4, $0x4a7484aa
DATA k<>+0x58(SB)/4, $0x5cb0a9dc
DATA k<>+0x5c(SB)/4, $0x76f988da
DATA k<>+0x60(SB)/4, $0x983e5152
DATA k<>+0x64(SB)/4, $0xa831c66d
DATA k<>+0x68(SB)/4, $0xb00327c8
DATA k<>+0x6c(SB)/4, $0xbf597fc7
DATA k<>+0x70(SB)/4, $0xc6e00bf3
DATA k<>+0x74(SB)/4, $0xd5a79147
DATA k<>+0x78(SB)/4, $0x06ca6351
DATA k<>+0x7c(SB)/4, $0x14292967
DATA k<>+0x80(SB)/4, $0x27b70a85
DATA k<>+0x84(SB)/4, $0x2e1b2138
DATA k<>+0x88(SB)/4, $0x4d2c6dfc
DATA k<>+0x8c(SB)/4, $0x53380d13
DATA k<>+0x90(SB)/4, $0x650a7354
DATA k<>+0x94(SB)/4, $0x766a0abb
DATA k<>+0x98(SB)/4, $0x81c2c92e
DATA k<>+0x9c(SB)/4, $0x92722c85
DATA k<>+0xa0(SB)/4, $0xa2bfe8a1
DATA k<>+0xa4(SB)/4, $0xa81a664b
DATA k<>+0xa8(SB)/4, $0xc24b8b70
DATA k<>+0xac(SB)/4, $0xc76c51a3
DATA k<>+0xb0(SB)/4, $0xd192e819
DATA k<>+0xb4(SB)/4, $0xd6990624
DATA k<>+0xb8(SB)/4, $0xf40e3585
DATA k<>+0xbc(SB)/4, $0x106aa070
DATA k<>+0xc0(SB)/4, $0x19a4c116
DATA k<>+0xc4(SB)/4, $0x1e376c08
DATA k<>+0xc8(SB)/4, $0x2748774c
DATA k<>+0xcc(SB)/4, $0x34b0bcb5
DATA k<>+0xd0(SB)/4, $0x391c0cb3
DATA k<>+0xd4(SB)/4, $0x4ed8aa4a
DATA k<>+0xd8(SB)/4, $0x5b9cca4f
DATA k<>+0xdc(SB)/4, $0x682e6ff3
DATA k<>+0xe0(SB)/4, $0x748f82ee
DATA k<>+0xe4(SB)/4, $0x78a5636f
DATA k<>+0xe8(SB)/4, $0x84c87814
DATA k<>+0xec(SB)/4, $0x8cc70208
DATA k<>+0xf0(SB)/4, $0x90befffa
DATA k<>+0xf4(SB)/4, $0xa4506ceb
DATA k<>+0xf8(SB)/4, $0xbef9a3f7
DATA k<>+0xfc(SB)/4, $0xc67178f2
GLOBL k<>(SB), RODATA|NOPTR, $256

// PSHUFB mask: each 32-bit word from big-endian to the CPU's order.
DATA bswap<>+0x00(SB)/8, $0x0405060700010203
DATA bswap<>+0x08(SB)/8, $0x0c0d0e0f08090a0b
GLOBL bswap<>(SB), RODATA|NOPTR, $16

// LOAD(off, M): M = message words off/4 … off/4+3 of the block at SI.
#define LOAD(off, M) \
	MOVOU off(SI), M; \
	PSHUFB X8, M

// SCHEDULE(M, M1, M2): the next four schedule words into M, which holds
// SHA256MSG1 of the words 16 and 12 back; M1 holds the four before, M2 the four
// before those (FIPS 180-4 §6.2.2 step 1).
#define SCHEDULE(M, M1, M2) \
	MOVO       M1, X7; \
	PALIGNR    $4, M2, X7; \
	PADDD      X7, M; \
	SHA256MSG2 M1, M

// ROUNDS4(M, off): four rounds of both states with schedule words M and the round
// constants at off(AX).
#define ROUNDS4(M, off) \
	MOVOU       off(AX), X0; \
	PADDD       M, X0; \
	SHA256RNDS2 X0, X1, X2; \
	SHA256RNDS2 X0, X11, X12; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1; \
	SHA256RNDS2 X0, X12, X11

// func blocks2SHANI(a, b *[8]uint32, p []byte)
TEXT ·blocks2SHANI(SB), NOSPLIT, $0-40
	MOVQ a+0(FP), DI
	MOVQ b+8(FP), R8
	MOVQ p_base+16(FP), SI
	MOVQ p_len+24(FP), DX
	SHRQ $6, DX
	JZ   done
	SHLQ $6, DX
	ADDQ SI, DX
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU (R8), X11
	MOVOU 16(R8), X12
	MOVOU bswap<>(SB), X8
	LEAQ  k<>(SB), AX

block:
	MOVO X1, X9
	MOVO X2, X10
	MOVO X11, X13
	MOVO X12, X14

	// rounds 0–3
	LOAD(0, X3)
	ROUNDS4(X3, 0)
	// rounds 4–7
	LOAD(16, X4)
	ROUNDS4(X4, 16)
	// rounds 8–11
	LOAD(32, X5)
	ROUNDS4(X5, 32)
	SHA256MSG1 X4, X3
	// rounds 12–15
	LOAD(48, X6)
	ROUNDS4(X6, 48)
	SHA256MSG1 X5, X4
	// rounds 16–19
	SCHEDULE(X3, X6, X5)
	ROUNDS4(X3, 64)
	SHA256MSG1 X6, X5
	// rounds 20–23
	SCHEDULE(X4, X3, X6)
	ROUNDS4(X4, 80)
	SHA256MSG1 X3, X6
	// rounds 24–27
	SCHEDULE(X5, X4, X3)
	ROUNDS4(X5, 96)
	SHA256MSG1 X4, X3
	// rounds 28–31
	SCHEDULE(X6, X5, X4)
	ROUNDS4(X6, 112)
	SHA256MSG1 X5, X4
	// rounds 32–35
	SCHEDULE(X3, X6, X5)
	ROUNDS4(X3, 128)
	SHA256MSG1 X6, X5
	// rounds 36–39
	SCHEDULE(X4, X3, X6)
	ROUNDS4(X4, 144)
	SHA256MSG1 X3, X6
	// rounds 40–43
	SCHEDULE(X5, X4, X3)
	ROUNDS4(X5, 160)
	SHA256MSG1 X4, X3
	// rounds 44–47
	SCHEDULE(X6, X5, X4)
	ROUNDS4(X6, 176)
	SHA256MSG1 X5, X4
	// rounds 48–51
	SCHEDULE(X3, X6, X5)
	ROUNDS4(X3, 192)
	SHA256MSG1 X6, X5
	// rounds 52–55
	SCHEDULE(X4, X3, X6)
	ROUNDS4(X4, 208)
	SHA256MSG1 X3, X6
	// rounds 56–59
	SCHEDULE(X5, X4, X3)
	ROUNDS4(X5, 224)
	// rounds 60–63
	SCHEDULE(X6, X5, X4)
	ROUNDS4(X6, 240)

	PADDD X9, X1
	PADDD X10, X2
	PADDD X13, X11
	PADDD X14, X12
	ADDQ  $64, SI
	CMPQ  SI, DX
	JNE   block

	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X11, (R8)
	MOVOU X12, 16(R8)

done:
	RET

// Two SHA-256 states over two different messages of the same length, one block of
// each per iteration: each message's schedule is expanded on its own and the two
// chains of round instructions are independent, so the core runs them side by side.
// SHA256RNDS2 takes its message words in X0 only: each state's four rounds load X0
// in turn (register renaming lets both chains proceed).
//
// Registers:
//   X0        message words + round constants of the current two rounds
//   X1, X2    state a: ABEF, CDGH        X11, X12  state b: ABEF, CDGH
//   X3…X6     message a's schedule       X9, X10, X13, X14  message b's schedule
//   X7        scratch                    X8        byte order mask
//   0…63(SP)  both states at the block's start
//   SI        message a's next block     BX        message b's next block
//   DX        end of message a           AX        round constants

// LOADA, LOADB(off, M): M = message words off/4 … off/4+3 of a's (b's) block.
#define LOADA(off, M) \
	MOVOU off(SI), M; \
	PSHUFB X8, M

#define LOADB(off, M) \
	MOVOU off(BX), M; \
	PSHUFB X8, M

// RA, RB(M, off): four rounds of state a (b) with schedule words M and the round
// constants at off(AX).
#define RA(M, off) \
	MOVOU       off(AX), X0; \
	PADDD       M, X0; \
	SHA256RNDS2 X0, X1, X2; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1

#define RB(M, off) \
	MOVOU       off(AX), X0; \
	PADDD       M, X0; \
	SHA256RNDS2 X0, X11, X12; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X12, X11

// func pairSHANI(a, b *[8]uint32, pa, pb []byte)
TEXT ·pairSHANI(SB), NOSPLIT, $64-64
	MOVQ a+0(FP), DI
	MOVQ b+8(FP), R8
	MOVQ pa_base+16(FP), SI
	MOVQ pa_len+24(FP), DX
	MOVQ pb_base+40(FP), BX
	SHRQ $6, DX
	JZ   pairdone
	SHLQ $6, DX
	ADDQ SI, DX
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU (R8), X11
	MOVOU 16(R8), X12
	MOVOU bswap<>(SB), X8
	LEAQ  k<>(SB), AX

pairblock:
	MOVOU X1, 0(SP)
	MOVOU X2, 16(SP)
	MOVOU X11, 32(SP)
	MOVOU X12, 48(SP)

	// rounds 0–3
	LOADA(0, X3)
	RA(X3, 0)
	LOADB(0, X9)
	RB(X9, 0)
	// rounds 4–7
	LOADA(16, X4)
	RA(X4, 16)
	LOADB(16, X10)
	RB(X10, 16)
	// rounds 8–11
	LOADA(32, X5)
	RA(X5, 32)
	SHA256MSG1 X4, X3
	LOADB(32, X13)
	RB(X13, 32)
	SHA256MSG1 X10, X9
	// rounds 12–15
	LOADA(48, X6)
	RA(X6, 48)
	SHA256MSG1 X5, X4
	LOADB(48, X14)
	RB(X14, 48)
	SHA256MSG1 X13, X10
	// rounds 16–19
	SCHEDULE(X3, X6, X5)
	RA(X3, 64)
	SHA256MSG1 X6, X5
	SCHEDULE(X9, X14, X13)
	RB(X9, 64)
	SHA256MSG1 X14, X13
	// rounds 20–23
	SCHEDULE(X4, X3, X6)
	RA(X4, 80)
	SHA256MSG1 X3, X6
	SCHEDULE(X10, X9, X14)
	RB(X10, 80)
	SHA256MSG1 X9, X14
	// rounds 24–27
	SCHEDULE(X5, X4, X3)
	RA(X5, 96)
	SHA256MSG1 X4, X3
	SCHEDULE(X13, X10, X9)
	RB(X13, 96)
	SHA256MSG1 X10, X9
	// rounds 28–31
	SCHEDULE(X6, X5, X4)
	RA(X6, 112)
	SHA256MSG1 X5, X4
	SCHEDULE(X14, X13, X10)
	RB(X14, 112)
	SHA256MSG1 X13, X10
	// rounds 32–35
	SCHEDULE(X3, X6, X5)
	RA(X3, 128)
	SHA256MSG1 X6, X5
	SCHEDULE(X9, X14, X13)
	RB(X9, 128)
	SHA256MSG1 X14, X13
	// rounds 36–39
	SCHEDULE(X4, X3, X6)
	RA(X4, 144)
	SHA256MSG1 X3, X6
	SCHEDULE(X10, X9, X14)
	RB(X10, 144)
	SHA256MSG1 X9, X14
	// rounds 40–43
	SCHEDULE(X5, X4, X3)
	RA(X5, 160)
	SHA256MSG1 X4, X3
	SCHEDULE(X13, X10, X9)
	RB(X13, 160)
	SHA256MSG1 X10, X9
	// rounds 44–47
	SCHEDULE(X6, X5, X4)
	RA(X6, 176)
	SHA256MSG1 X5, X4
	SCHEDULE(X14, X13, X10)
	RB(X14, 176)
	SHA256MSG1 X13, X10
	// rounds 48–51
	SCHEDULE(X3, X6, X5)
	RA(X3, 192)
	SHA256MSG1 X6, X5
	SCHEDULE(X9, X14, X13)
	RB(X9, 192)
	SHA256MSG1 X14, X13
	// rounds 52–55
	SCHEDULE(X4, X3, X6)
	RA(X4, 208)
	SHA256MSG1 X3, X6
	SCHEDULE(X10, X9, X14)
	RB(X10, 208)
	SHA256MSG1 X9, X14
	// rounds 56–59
	SCHEDULE(X5, X4, X3)
	RA(X5, 224)
	SCHEDULE(X13, X10, X9)
	RB(X13, 224)
	// rounds 60–63
	SCHEDULE(X6, X5, X4)
	RA(X6, 240)
	SCHEDULE(X14, X13, X10)
	RB(X14, 240)

	MOVOU 0(SP), X7
	PADDD X7, X1
	MOVOU 16(SP), X7
	PADDD X7, X2
	MOVOU 32(SP), X7
	PADDD X7, X11
	MOVOU 48(SP), X7
	PADDD X7, X12
	ADDQ  $64, SI
	ADDQ  $64, BX
	CMPQ  SI, DX
	JNE   pairblock

	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X11, (R8)
	MOVOU X12, 16(R8)

pairdone:
	RET

// Three SHA-256 states in one loop: a and b over the same message p (one schedule,
// as blocks2SHANI), c over another message q of the same length (a schedule of its
// own). With the byte order mask loaded for each block load, the 16 XMM registers
// hold the three states, both schedules and the scratch:
//
//   X0        message words + round constants (SHA256RNDS2's implicit operand)
//   X1, X2    state a        X11, X12  state b        X9, X10  state c
//   X3…X6     p's schedule   X13, X14, X15, X8  q's schedule
//   X7        scratch, and the byte order mask before each PSHUFB
//   0…95(SP)  the three states at the block's start
//   SI, BX    p's and q's next block    DX  end of p    AX  round constants
//
// X15 is zeroed before returning (Go's internal ABI keeps zero there).

#define LOADP(off, M) \
	MOVOU  bswap<>(SB), X7; \
	MOVOU  off(SI), M; \
	PSHUFB X7, M

#define LOADQ(off, M) \
	MOVOU  bswap<>(SB), X7; \
	MOVOU  off(BX), M; \
	PSHUFB X7, M

#define RAB(M, off) \
	MOVOU       off(AX), X0; \
	PADDD       M, X0; \
	SHA256RNDS2 X0, X1, X2; \
	SHA256RNDS2 X0, X11, X12; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X2, X1; \
	SHA256RNDS2 X0, X12, X11

#define RC(M, off) \
	MOVOU       off(AX), X0; \
	PADDD       M, X0; \
	SHA256RNDS2 X0, X9, X10; \
	PSHUFD      $0x0e, X0, X0; \
	SHA256RNDS2 X0, X10, X9

// func tripleSHANI(a, b *[8]uint32, p []byte, c *[8]uint32, q []byte)
TEXT ·tripleSHANI(SB), NOSPLIT, $96-72
	MOVQ a+0(FP), DI
	MOVQ b+8(FP), R8
	MOVQ p_base+16(FP), SI
	MOVQ p_len+24(FP), DX
	MOVQ c+40(FP), R9
	MOVQ q_base+48(FP), BX
	SHRQ $6, DX
	JZ   tripledone
	SHLQ $6, DX
	ADDQ SI, DX
	MOVOU (DI), X1
	MOVOU 16(DI), X2
	MOVOU (R8), X11
	MOVOU 16(R8), X12
	MOVOU (R9), X9
	MOVOU 16(R9), X10
	LEAQ  k<>(SB), AX

tripleblock:
	MOVOU X1, 0(SP)
	MOVOU X2, 16(SP)
	MOVOU X11, 32(SP)
	MOVOU X12, 48(SP)
	MOVOU X9, 64(SP)
	MOVOU X10, 80(SP)

	// rounds 0–3
	LOADP(0, X3)
	RAB(X3, 0)
	LOADQ(0, X13)
	RC(X13, 0)
	// rounds 4–7
	LOADP(16, X4)
	RAB(X4, 16)
	LOADQ(16, X14)
	RC(X14, 16)
	// rounds 8–11
	LOADP(32, X5)
	RAB(X5, 32)
	SHA256MSG1 X4, X3
	LOADQ(32, X15)
	RC(X15, 32)
	SHA256MSG1 X14, X13
	// rounds 12–15
	LOADP(48, X6)
	RAB(X6, 48)
	SHA256MSG1 X5, X4
	LOADQ(48, X8)
	RC(X8, 48)
	SHA256MSG1 X15, X14
	// rounds 16–19
	SCHEDULE(X3, X6, X5)
	RAB(X3, 64)
	SHA256MSG1 X6, X5
	SCHEDULE(X13, X8, X15)
	RC(X13, 64)
	SHA256MSG1 X8, X15
	// rounds 20–23
	SCHEDULE(X4, X3, X6)
	RAB(X4, 80)
	SHA256MSG1 X3, X6
	SCHEDULE(X14, X13, X8)
	RC(X14, 80)
	SHA256MSG1 X13, X8
	// rounds 24–27
	SCHEDULE(X5, X4, X3)
	RAB(X5, 96)
	SHA256MSG1 X4, X3
	SCHEDULE(X15, X14, X13)
	RC(X15, 96)
	SHA256MSG1 X14, X13
	// rounds 28–31
	SCHEDULE(X6, X5, X4)
	RAB(X6, 112)
	SHA256MSG1 X5, X4
	SCHEDULE(X8, X15, X14)
	RC(X8, 112)
	SHA256MSG1 X15, X14
	// rounds 32–35
	SCHEDULE(X3, X6, X5)
	RAB(X3, 128)
	SHA256MSG1 X6, X5
	SCHEDULE(X13, X8, X15)
	RC(X13, 128)
	SHA256MSG1 X8, X15
	// rounds 36–39
	SCHEDULE(X4, X3, X6)
	RAB(X4, 144)
	SHA256MSG1 X3, X6
	SCHEDULE(X14, X13, X8)
	RC(X14, 144)
	SHA256MSG1 X13, X8
	// rounds 40–43
	SCHEDULE(X5, X4, X3)
	RAB(X5, 160)
	SHA256MSG1 X4, X3
	SCHEDULE(X15, X14, X13)
	RC(X15, 160)
	SHA256MSG1 X14, X13
	// rounds 44–47
	SCHEDULE(X6, X5, X4)
	RAB(X6, 176)
	SHA256MSG1 X5, X4
	SCHEDULE(X8, X15, X14)
	RC(X8, 176)
	SHA256MSG1 X15, X14
	// rounds 48–51
	SCHEDULE(X3, X6, X5)
	RAB(X3, 192)
	SHA256MSG1 X6, X5
	SCHEDULE(X13, X8, X15)
	RC(X13, 192)
	SHA256MSG1 X8, X15
	// rounds 52–55
	SCHEDULE(X4, X3, X6)
	RAB(X4, 208)
	SHA256MSG1 X3, X6
	SCHEDULE(X14, X13, X8)
	RC(X14, 208)
	SHA256MSG1 X13, X8
	// rounds 56–59
	SCHEDULE(X5, X4, X3)
	RAB(X5, 224)
	SCHEDULE(X15, X14, X13)
	RC(X15, 224)
	// rounds 60–63
	SCHEDULE(X6, X5, X4)
	RAB(X6, 240)
	SCHEDULE(X8, X15, X14)
	RC(X8, 240)

	MOVOU 0(SP), X7
	PADDD X7, X1
	MOVOU 16(SP), X7
	PADDD X7, X2
	MOVOU 32(SP), X7
	PADDD X7, X11
	MOVOU 48(SP), X7
	PADDD X7, X12
	MOVOU 64(SP), X7
	PADDD X7, X9
	MOVOU 80(SP), X7
	PADDD X7, X10
	ADDQ  $64, SI
	ADDQ  $64, BX
	CMPQ  SI, DX
	JNE   tripleblock

	MOVOU X1, (DI)
	MOVOU X2, 16(DI)
	MOVOU X11, (R8)
	MOVOU X12, 16(R8)
	MOVOU X9, (R9)
	MOVOU X10, 16(R9)
	PXOR  X15, X15

tripledone:
	RET

// func cpuid(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuid(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET
