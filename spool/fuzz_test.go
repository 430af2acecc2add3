package spool

import (
	"testing"
)

// The fuzz input is one byte that picks MaxSize, then records of
// fuzzRecordLen bytes, one per operation (a trailing partial record is
// ignored, as is anything past fuzzMaxOps records):
//
//	byte 0:    the operation, modulo numOpKinds
//	bytes 1-3: offset (big endian), modulo fuzzMaxOffset; the new size for Truncate
//	bytes 4-5: length (big endian); WriteAt writes length+1 bytes, so never
//	           none (see TestZeroLengthWrite), the others use it as is
//	byte 6:    the data WriteAt writes: pattern(seed, n), zeros for 0
const (
	fuzzRecordLen = 7
	fuzzMaxOps    = 32
	fuzzMaxOffset = 256 << 10
)

var fuzzMaxSizes = [...]int64{0, 4096, 10000, 64 << 10}

// fuzzRecord is one operation as the fuzz input spells it.
type fuzzRecord struct {
	kind   opKind
	off    int64  // < fuzzMaxOffset
	length uint16 // for a write, the number of bytes less one
	seed   byte
}

// decodeFuzzInput turns a fuzz input into MaxSize and operations.
func decodeFuzzInput(in []byte) (maxSize int64, ops []op) {
	if len(in) == 0 {
		return 0, nil
	}
	maxSize = fuzzMaxSizes[int(in[0])%len(fuzzMaxSizes)]
	for in = in[1:]; len(in) >= fuzzRecordLen && len(ops) < fuzzMaxOps; in = in[fuzzRecordLen:] {
		r := in[:fuzzRecordLen]
		kind := opKind(r[0] % byte(numOpKinds))
		off := (int64(r[1])<<16 | int64(r[2])<<8 | int64(r[3])) % fuzzMaxOffset
		length := int64(r[4])<<8 | int64(r[5])
		o := op{kind: kind, off: off, n: length}
		if kind == opWrite {
			o = writeOp(off, pattern(r[6], int(length)+1))
		}
		ops = append(ops, o)
	}
	return maxSize, ops
}

// encodeFuzzInput is the inverse of decodeFuzzInput, for the seed corpus.
func encodeFuzzInput(maxSizeIndex byte, recs ...fuzzRecord) []byte {
	in := []byte{maxSizeIndex}
	for _, r := range recs {
		in = append(in, byte(r.kind), byte(r.off>>16), byte(r.off>>8), byte(r.off), byte(r.length>>8), byte(r.length), r.seed)
	}
	return in
}

// Records for the seed corpus. Offsets must be below fuzzMaxOffset.
func fzWrite(off int64, n int, seed byte) fuzzRecord {
	return fuzzRecord{kind: opWrite, off: off, length: uint16(n - 1), seed: seed}
}
func fzRead(off int64, n uint16) fuzzRecord  { return fuzzRecord{kind: opRead, off: off, length: n} }
func fzTruncate(size int64) fuzzRecord       { return fuzzRecord{kind: opTruncate, off: size} }
func fzPunch(off int64, n uint16) fuzzRecord { return fuzzRecord{kind: opPunch, off: off, length: n} }
func fzAlloc(off int64, n uint16) fuzzRecord { return fuzzRecord{kind: opAlloc, off: off, length: n} }
func fzKeep(off int64, n uint16) fuzzRecord {
	return fuzzRecord{kind: opAllocKeep, off: off, length: n}
}
func fzSpill() fuzzRecord             { return fuzzRecord{kind: opSpill} }
func fzSeekData(off int64) fuzzRecord { return fuzzRecord{kind: opSeekData, off: off} }
func fzSeekHole(off int64) fuzzRecord { return fuzzRecord{kind: opSeekHole, off: off} }
func fzSeeks(offs ...int64) (recs []fuzzRecord) {
	for _, off := range offs {
		recs = append(recs, fzSeekData(off), fzSeekHole(off))
	}
	return recs
}

// Indexes into fuzzMaxSizes.
const (
	fzNoLimit byte = iota // MaxSize 0
	fz4096
	fz10000
	fz64K
)

// fuzzSeeds are the hand-picked inputs of the seed corpus.
var fuzzSeeds = []struct {
	name    string
	maxSize byte
	recs    []fuzzRecord
}{
	{"rollover by write in the middle", fz64K, append([]fuzzRecord{
		fzWrite(0, 4096, 1),
		fzKeep(8192, 4096),
		fzPunch(100, 200),
		fzWrite(60000, 5536, 2), // ends at MaxSize: stays in RAM
		fzWrite(65536, 1, 3),    // one byte more: rolls over
		fzRead(65000, 1000),
		fzPunch(4000, 10000),
		fzTruncate(30000),
	}, fzSeeks(0, 4096, 8192, 29999)...)},
	{"rollover by write across a page edge", fz4096, []fuzzRecord{
		fzWrite(0, 4095, 4),
		fzWrite(4095, 2, 5), // crosses page and threshold
		fzRead(4000, 200),
		fzTruncate(2),
		fzTruncate(9000),
		fzRead(0, 9000),
	}},
	{"rollover by truncate, threshold not page aligned", fz10000, []fuzzRecord{
		fzWrite(9000, 1000, 6), // ends at MaxSize
		fzTruncate(10000),
		fzSeekData(0),
		fzTruncate(10001), // rolls over
		fzRead(8190, 2000),
		fzSeekData(0),
		fzSeekHole(9500),
	}},
	{"rollover by fallocate keep size past the threshold", fz10000, []fuzzRecord{
		fzWrite(0, 100, 7),
		fzKeep(4096, 5904), // ends at MaxSize: stays in RAM
		fzKeep(4096, 5905), // rolls over
		fzTruncate(20000),
		fzRead(0, 20000),
		fzSeekData(100),
	}},
	{"punch holes across page edges", fzNoLimit, append([]fuzzRecord{
		fzWrite(0, 20000, 8),
		fzPunch(4000, 4300),  // [4000, 8300): frees page 1, zeros edges of 0 and 2
		fzPunch(12288, 4096), // exactly page 3
		fzPunch(100, 100),    // inside page 0
		fzPunch(16383, 2),    // across the edge of pages 3 and 4
		fzPunch(19000, 5000), // past end of file
	}, fzSeeks(0, 4000, 4096, 8192, 8300, 12288, 16384, 19999)...)},
	{"punch holes then spill", fzNoLimit, append([]fuzzRecord{
		fzWrite(0, 65535, 9),
		fzWrite(65535, 65535, 10),
		fzPunch(4096, 8192),
		fzPunch(30001, 40000),
		fzSpill(),
		fzPunch(100000, 3),
	}, fzSeeks(0, 4096, 12288, 30000, 70000, 131069)...)},
	{"truncate down then up reads zeros", fzNoLimit, []fuzzRecord{
		fzWrite(0, 10000, 11),
		fzTruncate(5000),
		fzTruncate(12000),
		fzRead(4990, 100),
		fzTruncate(4096),
		fzTruncate(4097),
		fzTruncate(0),
		fzTruncate(8192),
		fzSeekData(0),
		fzSeekHole(0),
	}},
	{"truncate down then up on disk", fz4096, []fuzzRecord{
		fzWrite(0, 3000, 12),
		fzWrite(3000, 5000, 19), // rolls over
		fzTruncate(3000),
		fzTruncate(8000),
		fzRead(2990, 100),
	}},
	{"fallocate keep size past end then truncate up", fzNoLimit, append([]fuzzRecord{
		fzWrite(0, 100, 13),
		fzKeep(4096, 12288),
		fzTruncate(16384),
		fzRead(0, 16384),
	}, fzSeeks(0, 100, 4096, 16383)...)},
	{"fallocate keep size past end, spill, truncate up", fzNoLimit, []fuzzRecord{
		fzWrite(0, 5000, 14),
		fzKeep(5000, 20000),
		fzSpill(),
		fzTruncate(30000),
		fzRead(4990, 30),
		fzSeekHole(0),
	}},
	{"fallocate grows the file, then writes inside", fz64K, append([]fuzzRecord{
		fzAlloc(1000, 10000),
		fzWrite(5000, 10, 15),
		fzTruncate(6000),
		fzAlloc(60000, 5536), // ends at MaxSize
		fzAlloc(60000, 5537), // rolls over
		fzWrite(70000, 10, 16),
	}, fzSeeks(0, 5000, 6000, 60000, 70009)...)},
	{"zeros written are data", fzNoLimit, append([]fuzzRecord{
		fzWrite(8192, 4096, 0),
		fzWrite(20000, 1, 17),
		fzPunch(8192, 4096),
		fzWrite(12288, 10, 0),
	}, fzSeeks(0, 8192, 12288, 19000)...)},
	{"errors: zero lengths and offsets at the limit", fzNoLimit, []fuzzRecord{
		fzPunch(0, 0),
		fzAlloc(100, 0),
		fzKeep(100, 0),
		fzRead(0, 0),
		fzWrite(fuzzMaxOffset-1, 1, 18),
		fzSeekData(fuzzMaxOffset - 1),
		fzSeekHole(fuzzMaxOffset - 1),
		fzPunch(fuzzMaxOffset-1, 65535),
	}},
}

// FuzzFileAgainstModel runs sequences of operations on a File and on the
// model, checking every result and, after every operation, the size,
// residency, space and every byte of the file.
func FuzzFileAgainstModel(f *testing.F) {
	for _, seed := range fuzzSeeds {
		f.Add(encodeFuzzInput(seed.maxSize, seed.recs...))
	}
	// One Store for each MaxSize serves every input (run one at a time):
	// making a Store costs more than most inputs.
	stores := make(map[int64]*Store)
	for _, maxSize := range fuzzMaxSizes {
		stores[maxSize] = newTestStore(f, maxSize)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		maxSize, ops := decodeFuzzInput(in)
		h := newHarnessIn(t, stores[maxSize])
		h.apply(t, ops...)
	})
}

// TestFuzzSeeds checks that the seed corpus says what it means: each seed
// decodes to its records, and the rollover seeds do roll over, in the
// middle of their sequence.
func TestFuzzSeeds(t *testing.T) {
	for _, seed := range fuzzSeeds {
		t.Run(seed.name, func(t *testing.T) {
			maxSize, ops := decodeFuzzInput(encodeFuzzInput(seed.maxSize, seed.recs...))
			if want := fuzzMaxSizes[seed.maxSize]; maxSize != want {
				t.Errorf("MaxSize = %d, want %d", maxSize, want)
			}
			if len(ops) != len(seed.recs) || len(ops) > fuzzMaxOps {
				t.Fatalf("%d operations, want %d (at most %d)", len(ops), len(seed.recs), fuzzMaxOps)
			}
			for i, r := range seed.recs {
				o := ops[i]
				wantN := int64(r.length)
				if r.kind == opWrite {
					wantN = 0
					if len(o.data) != int(r.length)+1 {
						t.Errorf("op %d: writes %d bytes, want %d", i, len(o.data), int(r.length)+1)
					}
				}
				if o.kind != r.kind || o.off != r.off || o.n != wantN {
					t.Errorf("op %d = %v, want kind %d, off %d, n %d", i, o, r.kind, r.off, wantN)
				}
			}
			// Where the seed's name promises a rollover, it happens,
			// and not at the first operation.
			h := newHarness(t, maxSize)
			rolledAt := -1
			for i, o := range ops {
				h.apply(t, o)
				if h.m.onDisk && rolledAt < 0 {
					rolledAt = i
				}
			}
			if maxSize > 0 && (rolledAt < 1 || rolledAt == len(ops)-1) {
				t.Errorf("with MaxSize %d the file rolled over at operation %d of %d, want in the middle", maxSize, rolledAt, len(ops))
			}
		})
	}
}
