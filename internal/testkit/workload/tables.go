package workload

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"
)

var texts = []string{"plain", "𠮷野家", "emoji 😀🎉👩‍👩‍👧", "Ωmega ß ç √", "", "tab\tnewline\nquote'\"back\\slash", "a,b;c"}

func pickText(r *rand.Rand) string { return texts[r.IntN(len(texts))] + fmt.Sprint(r.IntN(1000)) }

func maybeNull(r *rand.Rand, v any) any {
	if r.IntN(8) == 0 {
		return nil
	}
	return v
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
	}
	return b
}

// bigText is text over 2 kB that does not compress: hex of a hash chain,
// with 4-byte UTF-8 in it, so PostgreSQL stores it out of line (TOAST).
func bigText(r *rand.Rand) string {
	var b strings.Builder
	h := sha256.Sum256(randBytes(r, 16))
	for b.Len() < 2500+r.IntN(3000) {
		b.WriteString(hex.EncodeToString(h[:]))
		b.WriteString("𠮷")
		h = sha256.Sum256(h[:])
	}
	return b.String()
}

func randDecimal(r *rand.Rand, intDigits, scale int) string {
	if r.IntN(10) == 0 {
		s := strings.Repeat("9", intDigits) + "." + strings.Repeat("9", scale)
		if r.IntN(2) == 0 {
			s = "-" + s
		}
		return s
	}
	var b strings.Builder
	if r.IntN(2) == 0 {
		b.WriteByte('-')
	}
	n := 1 + r.IntN(intDigits)
	for i := range n {
		d := r.IntN(10)
		if i == 0 && n > 1 && d == 0 {
			d = 1
		}
		b.WriteByte(byte('0' + d))
	}
	b.WriteByte('.')
	for range scale {
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	return b.String()
}

// randWall is a timestamp text between the years from and to, to the
// microsecond (or the second).
func randWall(r *rand.Rand, from, to int) string {
	y := from + r.IntN(to-from+1)
	t := time.Date(y, time.Month(1+r.IntN(12)), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60), r.IntN(1_000_000)*1000, time.UTC)
	if r.IntN(4) == 0 {
		t = t.Truncate(time.Second)
	}
	return t.Format("2006-01-02 15:04:05.000000")
}

func randUUID(r *rand.Rand) string {
	b := randBytes(r, 16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func i64(lo, hi int64) func(r *rand.Rand) any {
	return func(r *rand.Rand) any { return maybeNull(r, lo+r.Int64N(hi-lo+1)) }
}

// tables are the workload's tables for e, the same columns and kinds on
// both engines.
func tables(e Engine) []*Table {
	my := e == MariaDB
	def := func(mysql, pg string) string {
		if my {
			return mysql
		}
		return pg
	}
	return []*Table{
		{
			// Many types, a large text; updated_at in whole seconds, so
			// many changes of a key tie and source order decides.
			Name: "customers", Keys: []string{"id"}, OrderBy: []string{"updated_at"}, ReplicaFull: true,
			Columns: []Column{
				{Name: "id", Def: def("INT NOT NULL", "integer NOT NULL"), Kind: KInt, Ice: "int"},
				{Name: "name", Def: def("VARCHAR(100)", "varchar(100)"), Kind: KText, Ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, pickText(r)) }},
				{Name: "bio", Def: def("MEDIUMTEXT", "text"), Kind: KText, Ice: "string", gen: func(r *rand.Rand) any {
					if r.IntN(3) == 0 {
						return maybeNull(r, pickText(r))
					}
					return bigText(r)
				}},
				{Name: "small", Def: def("SMALLINT", "smallint"), Kind: KInt, Ice: "int", gen: i64(math.MinInt16, math.MaxInt16)},
				{Name: "big", Def: def("BIGINT", "bigint"), Kind: KInt, Ice: "long", gen: func(r *rand.Rand) any {
					return maybeNull(r, []int64{math.MinInt64, math.MaxInt64, int64(r.Uint64())}[r.IntN(3)])
				}},
				{Name: "f", Def: def("FLOAT", "real"), Kind: KFloat32, Ice: "float", gen: func(r *rand.Rand) any {
					return maybeNull(r, []float32{-1.5, 0.1, math.MaxFloat32, 1e-30, float32(r.NormFloat64() * 1000)}[r.IntN(5)])
				}},
				{Name: "d", Def: def("DOUBLE", "double precision"), Kind: KFloat64, Ice: "double", gen: func(r *rand.Rand) any {
					return maybeNull(r, []float64{0.1, -math.MaxFloat64, 5e-324, r.NormFloat64() * 1e10}[r.IntN(4)])
				}},
				{Name: "price", Def: def("DECIMAL(10,2)", "numeric(10,2)"), Kind: KDecimal, Scale: 2, Ice: "decimal(10,2)", gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 8, 2)) }},
				{Name: "born", Def: def("DATE", "date"), Kind: KDate, Ice: "date", gen: func(r *rand.Rand) any { return maybeNull(r, randWall(r, 1000, 9999)[:10]) }},
				{Name: "seen", Def: def("DATETIME(6)", "timestamp(6)"), Kind: KWall, Ice: "timestamp", gen: func(r *rand.Rand) any { return maybeNull(r, randWall(r, 1000, 9999)) }},
				{Name: "ok", Def: def("BIT(1)", "boolean"), Kind: KBool, Ice: "boolean", gen: func(r *rand.Rand) any {
					v := r.IntN(2) == 1
					if my {
						return maybeNull(r, map[bool]int{false: 0, true: 1}[v])
					}
					return maybeNull(r, v)
				}},
				{Name: "raw", Def: def("BLOB", "bytea"), Kind: KBytes, Ice: "binary", gen: func(r *rand.Rand) any { return maybeNull(r, randBytes(r, r.IntN(300))) }},
				{Name: "updated_at", Def: def("TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP", "timestamptz(0) NOT NULL DEFAULT now()"), Kind: KInstant, Ice: "timestamptz"},
			},
		},
		{
			// A composite key with 4-byte UTF-8 in it; a decimal(38,10);
			// json and uuid; updated_at with microseconds.
			Name: "order_lines", Keys: []string{"order_id", "sku"}, OrderBy: []string{"updated_at"},
			Columns: []Column{
				{Name: "order_id", Def: def("BIGINT NOT NULL", "bigint NOT NULL"), Kind: KInt, Ice: "long"},
				{Name: "sku", Def: def("VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL", "varchar(20) COLLATE \"C\" NOT NULL"), Kind: KText, Ice: "string"},
				{Name: "qty", Def: def("INT", "integer"), Kind: KInt, Ice: "int", gen: i64(math.MinInt32, math.MaxInt32)},
				{Name: "amount", Def: def("DECIMAL(38,10)", "numeric(38,10)"), Kind: KDecimal, Scale: 10, Ice: "decimal(38,10)", gen: func(r *rand.Rand) any { return maybeNull(r, randDecimal(r, 28, 10)) }},
				{Name: "doc", Def: def("JSON", "jsonb"), Kind: KText, Ice: "string", gen: func(r *rand.Rand) any {
					return maybeNull(r, fmt.Sprintf(`{"name": %q, "n": %d, "e": "😀"}`, pickText(r), r.IntN(100)))
				}},
				{Name: "ref", Def: def("CHAR(36)", "uuid"), Kind: KText, Ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, randUUID(r)) }},
				{Name: "updated_at", Def: def("TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)", "timestamptz(6) NOT NULL DEFAULT now()"), Kind: KInstant, Ice: "timestamptz"},
			},
		},
		{
			// No updated_at: icemerge runs with --order-by source.
			Name: "events", Keys: []string{"id"},
			Columns: []Column{
				{Name: "id", Def: def("INT NOT NULL", "integer NOT NULL"), Kind: KInt, Ice: "int"},
				{Name: "kind", Def: def("VARCHAR(20)", "text"), Kind: KText, Ice: "string", gen: func(r *rand.Rand) any { return maybeNull(r, []string{"click", "view", "😀"}[r.IntN(3)]) }},
				{Name: "payload", Def: def("BLOB", "bytea"), Kind: KBytes, Ice: "binary", gen: func(r *rand.Rand) any { return maybeNull(r, randBytes(r, r.IntN(900))) }},
				{Name: "at", Def: def("TIMESTAMP(6) NULL", "timestamptz"), Kind: KInstant, Ice: "timestamptz", gen: func(r *rand.Rand) any {
					return maybeNull(r, randWall(r, 1971, 2037)+map[bool]string{true: "", false: "+00"}[my])
				}},
				{Name: "n", Def: def("DOUBLE", "double precision"), Kind: KFloat64, Ice: "double", gen: func(r *rand.Rand) any { return maybeNull(r, r.NormFloat64()) }},
			},
		},
	}
}
