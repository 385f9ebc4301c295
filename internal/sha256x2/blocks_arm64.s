//go:build !purego

#include "textflag.h"

// SHA-256 with the Armv8 Cryptography Extension, two or three states per pass. Each
// state's 64 rounds are a chain of dependent SHA256H/SHA256H2 pairs (four rounds
// each): one state alone leaves the crypto unit waiting for each pair's result, so
// the kernels issue the pairs of two (or three) states one after the other and the
// chains overlap. A state is two registers: ABCD and EFGH (the words A…H of State.H,
// lowest first). The round constants are package variable k, loaded four groups at a
// time (V20…V23); the message words are byte-reversed to big-endian words (VREV32).
//
// The schedule of one message is four registers M[i] (i mod 4) holding words 4i…4i+3.
// Four rounds i (i = 0…15) add the constants to M[i]; for i < 12 SHA256SU0 starts the
// next words W[16+4i…] in M[i] and, for 0 < i ≤ 12, SHA256SU1 finishes the ones
// started a group earlier (in M[i-1]) from M[i+1] and M[i+2] (FIPS 180-4 §6.2.2
// step 1), as Go's crypto/sha256 does for one state.

// WADD(K, M, WK): WK = the four round constants K + the four schedule words M.
#define WADD(K, M, WK) \
	VADD	K.S4, M.S4, WK.S4

// RND4(A, E, T, WK): four rounds of the state in A (ABCD) and E (EFGH) with WK; T is
// scratch (SHA256H2 needs ABCD as it was before SHA256H).
#define RND4(A, E, T, WK) \
	VMOV	A.B16, T.B16 \
	SHA256H	WK.S4, E, A \
	SHA256H2	WK.S4, T, E

// The schedule steps of group i, with M0…M3 = M[i], M[i+1], M[i+2], M[i+3] (= M[i-1]):
// FIRST (i = 0), MID (0 < i < 12), LAST (i = 12), TAIL (i > 12).
#define FIRST(K, M0, M1, M2, M3, WK) \
	WADD(K, M0, WK) \
	SHA256SU0	M1.S4, M0.S4

#define MID(K, M0, M1, M2, M3, WK) \
	WADD(K, M0, WK) \
	SHA256SU0	M1.S4, M0.S4 \
	SHA256SU1	M2.S4, M1.S4, M3.S4

#define LAST(K, M0, M1, M2, M3, WK) \
	WADD(K, M0, WK) \
	SHA256SU1	M2.S4, M1.S4, M3.S4

#define TAIL(K, M0, M1, M2, M3, WK) \
	WADD(K, M0, WK)

// LOADMSG(R, M0, M1, M2, M3): the next block at R (advanced by 64) as big-endian words.
#define LOADMSG(R, M0, M1, M2, M3) \
	VLD1.P	64(R), [M0.B16, M1.B16, M2.B16, M3.B16] \
	VREV32	M0.B16, M0.B16 \
	VREV32	M1.B16, M1.B16 \
	VREV32	M2.B16, M2.B16 \
	VREV32	M3.B16, M3.B16

// LOADK: the round constants of the next four groups, from R4 (advanced by 64).
#define LOADK \
	VLD1.P	64(R4), [V20.S4, V21.S4, V22.S4, V23.S4]

// ROUNDS(Q): a block's 64 rounds, Q(S0, S1, S2, S3) doing four groups with the
// schedule steps S0…S3 and the constants in V20…V23.
#define ROUNDS(Q) \
	MOVD	$·k(SB), R4 \
	LOADK \
	Q(FIRST, MID, MID, MID) \
	LOADK \
	Q(MID, MID, MID, MID) \
	LOADK \
	Q(MID, MID, MID, MID) \
	LOADK \
	Q(LAST, TAIL, TAIL, TAIL)

// ---- blocks2SHA2: one message, two states -------------------------------------------
//
//   V0, V1    state a          V24, V25  state a at the block's start
//   V16, V17  state b          V26, V27  state b at the block's start
//   V4…V7     the schedule     V8        constants + schedule words of four rounds
//   V2, V18   scratch          R2        next block; R3 bytes left; R4 constants

#define G2(S, K, M0, M1, M2, M3) \
	S(K, M0, M1, M2, M3, V8) \
	RND4(V0, V1, V2, V8) \
	RND4(V16, V17, V18, V8)

#define Q2(S0, S1, S2, S3) \
	G2(S0, V20, V4, V5, V6, V7) \
	G2(S1, V21, V5, V6, V7, V4) \
	G2(S2, V22, V6, V7, V4, V5) \
	G2(S3, V23, V7, V4, V5, V6)

// func blocks2SHA2(a, b *[8]uint32, p []byte)
TEXT ·blocks2SHA2(SB), NOSPLIT, $0-40
	MOVD	a+0(FP), R0
	MOVD	b+8(FP), R1
	MOVD	p_base+16(FP), R2
	MOVD	p_len+24(FP), R3
	AND	$~63, R3, R3
	CBZ	R3, done2
	VLD1	(R0), [V0.S4, V1.S4]
	VLD1	(R1), [V16.S4, V17.S4]

block2:
	VMOV	V0.B16, V24.B16
	VMOV	V1.B16, V25.B16
	VMOV	V16.B16, V26.B16
	VMOV	V17.B16, V27.B16
	LOADMSG(R2, V4, V5, V6, V7)
	ROUNDS(Q2)
	VADD	V24.S4, V0.S4, V0.S4
	VADD	V25.S4, V1.S4, V1.S4
	VADD	V26.S4, V16.S4, V16.S4
	VADD	V27.S4, V17.S4, V17.S4
	SUB	$64, R3, R3
	CBNZ	R3, block2

	VST1	[V0.S4, V1.S4], (R0)
	VST1	[V16.S4, V17.S4], (R1)

done2:
	RET

// ---- pairSHA2: two messages, a state each --------------------------------------------
//
//   V0, V1    state a          V24, V25  state a at the block's start
//   V16, V17  state b          V26, V27  state b at the block's start
//   V4…V7     a's schedule     V3        a's constants + schedule words of four rounds
//   V12…V15   b's schedule     V19       b's constants + schedule words
//   V2, V18   scratch          R2, R5    next blocks; R3 bytes left; R4 constants

#define GP(S, K, A0, A1, A2, A3, B0, B1, B2, B3) \
	S(K, A0, A1, A2, A3, V3) \
	S(K, B0, B1, B2, B3, V19) \
	RND4(V0, V1, V2, V3) \
	RND4(V16, V17, V18, V19)

#define QP(S0, S1, S2, S3) \
	GP(S0, V20, V4, V5, V6, V7, V12, V13, V14, V15) \
	GP(S1, V21, V5, V6, V7, V4, V13, V14, V15, V12) \
	GP(S2, V22, V6, V7, V4, V5, V14, V15, V12, V13) \
	GP(S3, V23, V7, V4, V5, V6, V15, V12, V13, V14)

// func pairSHA2(a, b *[8]uint32, pa, pb []byte)
TEXT ·pairSHA2(SB), NOSPLIT, $0-64
	MOVD	a+0(FP), R0
	MOVD	b+8(FP), R1
	MOVD	pa_base+16(FP), R2
	MOVD	pa_len+24(FP), R3
	MOVD	pb_base+40(FP), R5
	AND	$~63, R3, R3
	CBZ	R3, donep
	VLD1	(R0), [V0.S4, V1.S4]
	VLD1	(R1), [V16.S4, V17.S4]

blockp:
	VMOV	V0.B16, V24.B16
	VMOV	V1.B16, V25.B16
	VMOV	V16.B16, V26.B16
	VMOV	V17.B16, V27.B16
	LOADMSG(R2, V4, V5, V6, V7)
	LOADMSG(R5, V12, V13, V14, V15)
	ROUNDS(QP)
	VADD	V24.S4, V0.S4, V0.S4
	VADD	V25.S4, V1.S4, V1.S4
	VADD	V26.S4, V16.S4, V16.S4
	VADD	V27.S4, V17.S4, V17.S4
	SUB	$64, R3, R3
	CBNZ	R3, blockp

	VST1	[V0.S4, V1.S4], (R0)
	VST1	[V16.S4, V17.S4], (R1)

donep:
	RET

// ---- tripleSHA2: message p into states a and b, message q into state c ----------------
//
//   V0, V1    state a          V24, V25  state a at the block's start
//   V16, V17  state b          V26, V27  state b at the block's start
//   V8, V9    state c          V28, V29  state c at the block's start
//   V4…V7     p's schedule     V3        p's constants + schedule words of four rounds
//   V12…V15   q's schedule     V11       q's constants + schedule words
//   V2, V18, V10  scratch      R2, R5    next blocks; R3 bytes left; R4 constants

#define GT(S, K, P0, P1, P2, P3, Q0, Q1, Q2, Q3) \
	S(K, P0, P1, P2, P3, V3) \
	S(K, Q0, Q1, Q2, Q3, V11) \
	RND4(V0, V1, V2, V3) \
	RND4(V8, V9, V10, V11) \
	RND4(V16, V17, V18, V3)

#define QT(S0, S1, S2, S3) \
	GT(S0, V20, V4, V5, V6, V7, V12, V13, V14, V15) \
	GT(S1, V21, V5, V6, V7, V4, V13, V14, V15, V12) \
	GT(S2, V22, V6, V7, V4, V5, V14, V15, V12, V13) \
	GT(S3, V23, V7, V4, V5, V6, V15, V12, V13, V14)

// func tripleSHA2(a, b *[8]uint32, p []byte, c *[8]uint32, q []byte)
TEXT ·tripleSHA2(SB), NOSPLIT, $0-72
	MOVD	a+0(FP), R0
	MOVD	b+8(FP), R1
	MOVD	p_base+16(FP), R2
	MOVD	p_len+24(FP), R3
	MOVD	c+40(FP), R6
	MOVD	q_base+48(FP), R5
	AND	$~63, R3, R3
	CBZ	R3, donet
	VLD1	(R0), [V0.S4, V1.S4]
	VLD1	(R1), [V16.S4, V17.S4]
	VLD1	(R6), [V8.S4, V9.S4]

blockt:
	VMOV	V0.B16, V24.B16
	VMOV	V1.B16, V25.B16
	VMOV	V16.B16, V26.B16
	VMOV	V17.B16, V27.B16
	VMOV	V8.B16, V28.B16
	VMOV	V9.B16, V29.B16
	LOADMSG(R2, V4, V5, V6, V7)
	LOADMSG(R5, V12, V13, V14, V15)
	ROUNDS(QT)
	VADD	V24.S4, V0.S4, V0.S4
	VADD	V25.S4, V1.S4, V1.S4
	VADD	V26.S4, V16.S4, V16.S4
	VADD	V27.S4, V17.S4, V17.S4
	VADD	V28.S4, V8.S4, V8.S4
	VADD	V29.S4, V9.S4, V9.S4
	SUB	$64, R3, R3
	CBNZ	R3, blockt

	VST1	[V0.S4, V1.S4], (R0)
	VST1	[V16.S4, V17.S4], (R1)
	VST1	[V8.S4, V9.S4], (R6)

donet:
	RET
