package card

// Brand is a card scheme, derived from the PAN's prefix (IIN range).
//
// Prefixes and lengths: Visa 4 (13, 16, 19); Mastercard 51-55 and 2221-2720
// (16); Amex 34, 37 (15); Discover 6011, 622126-622925, 644-649, 65 (16-19);
// JCB 3528-3589 (16-19); Diners 300-305, 36, 38-39 (14-19); UnionPay 62
// (16-19); Maestro 50, 56-58 and any other 6 (12-19); Mir 2200-2204 (16-19).
//
// Where prefixes overlap the more specific range wins: Discover's co-branded
// 622126-622925 before UnionPay's 62, and Discover and UnionPay before
// Maestro's catch-all 6. The prefix alone decides the brand; a length that
// brand does not issue is ErrNumberLength, never a fall-through to another
// brand.
type Brand string

// The supported brands.
const (
	Visa       Brand = "visa"
	Mastercard Brand = "mastercard"
	Amex       Brand = "amex"
	Discover   Brand = "discover"
	JCB        Brand = "jcb"
	Diners     Brand = "diners"
	UnionPay   Brand = "unionpay"
	Maestro    Brand = "maestro"
	Mir        Brand = "mir"
)

// iinRange is a prefix range: the first len(lo) digits of the PAN, read as a
// number, lie in [lo, hi]. lo and hi have the same number of digits.
type iinRange struct {
	lo, hi string
	brand  Brand
	// lengths is a bit set: bit n set means n digits are issued.
	lengths uint32
}

func lens(ns ...int) uint32 {
	var m uint32
	for _, n := range ns {
		m |= 1 << n
	}
	return m
}

func lenRange(lo, hi int) uint32 {
	var m uint32
	for n := lo; n <= hi; n++ {
		m |= 1 << n
	}
	return m
}

// iinTable is checked in order and the first matching prefix decides the
// brand; the PAN length is then checked against that brand only. Order
// matters where ranges overlap:
//
//   - Discover's co-branded 622126-622925 comes before UnionPay's 62;
//   - Discover (6011, 644-649, 65) and UnionPay (62) come before Maestro's
//     catch-all 6, which takes only what no other brand matched;
//   - Mir (2200-2204) and Mastercard (2221-2720) do not overlap, nor do
//     Amex (34, 37), JCB (3528-3589) and Diners (300-305, 36, 38-39).
var iinTable = []iinRange{
	{"4", "4", Visa, lens(13, 16, 19)},
	{"2200", "2204", Mir, lenRange(16, 19)},
	{"2221", "2720", Mastercard, lens(16)},
	{"51", "55", Mastercard, lens(16)},
	{"34", "34", Amex, lens(15)},
	{"37", "37", Amex, lens(15)},
	{"3528", "3589", JCB, lenRange(16, 19)},
	{"300", "305", Diners, lenRange(14, 19)},
	{"36", "36", Diners, lenRange(14, 19)},
	{"38", "39", Diners, lenRange(14, 19)},
	{"6011", "6011", Discover, lenRange(16, 19)},
	{"622126", "622925", Discover, lenRange(16, 19)},
	{"644", "649", Discover, lenRange(16, 19)},
	{"65", "65", Discover, lenRange(16, 19)},
	{"62", "62", UnionPay, lenRange(16, 19)},
	{"50", "50", Maestro, lenRange(12, 19)},
	{"56", "58", Maestro, lenRange(12, 19)},
	{"6", "6", Maestro, lenRange(12, 19)},
}

// digitString is what lookupIIN reads: the []byte of a PAN being parsed or
// the secret of a parsed one.
type digitString interface{ ~string | ~[]byte }

// lookupIIN returns the table entry for digits (ASCII digits, at least 6 of
// them), or nil when no supported brand issues that prefix.
func lookupIIN[T digitString](digits T) *iinRange {
	for i := range iinTable {
		r := &iinTable[i]
		n := len(r.lo)
		if n > len(digits) {
			continue
		}
		// Same-width decimal strings compare like the numbers they spell;
		// string(b) in a comparison does not copy.
		if string(digits[:n]) >= r.lo && string(digits[:n]) <= r.hi {
			return r
		}
	}
	return nil
}
