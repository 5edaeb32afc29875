package merge

// slabChunk is how many entries one chunk of a valueSlab holds.
const slabChunk = 1 << 14

// valueSlab holds entries of width values each in chunks of slabChunk
// entries: adding one never copies what the slab holds (a slice grown by
// append copies it, and holds it twice meanwhile), and each chunk is
// allocated, and zeroed, once.
type valueSlab struct {
	width  int
	chunks [][]value
	n      int32 // entries
}

// add appends an entry holding a copy of vs (len(vs) == width) and returns
// its index.
func (s *valueSlab) add(vs []value) int32 {
	e := s.n
	c := int(e / slabChunk)
	if c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]value, slabChunk*s.width))
	}
	copy(s.at(e), vs)
	s.n++
	return e
}

// at is entry e, which the caller may change in place.
func (s *valueSlab) at(e int32) []value {
	o := int(e%slabChunk) * s.width
	return s.chunks[e/slabChunk][o : o+s.width : o+s.width]
}

// reset forgets every entry, keeping the first chunk.
func (s *valueSlab) reset() {
	if len(s.chunks) > 1 {
		s.chunks = s.chunks[:1]
	}
	if len(s.chunks) == 1 {
		clear(s.chunks[0]) // drop the strings it holds
	}
	s.n = 0
}
