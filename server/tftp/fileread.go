package tftp

// filePiece is how much of a boot file one read takes (newFileReader): pin/tftp asks
// for one block (up to 1468 bytes) per DATA packet, so a piece serves about 44 blocks.
const filePiece = 64 << 10
