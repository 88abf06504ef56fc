package hosted

import (
	"encoding/json"

	"github.com/chdproxy/chdproxy/card"
)

// brandRange is one row of the frame's brand table: the same prefix ranges, in the
// same order, as package card's IIN table (unexported there), with how the number
// is grouped as it is typed and how long the brand's CVV is. brands_test.go checks
// every row's edges and lengths against card.ParsePAN, so the two cannot drift
// apart unnoticed: the frame never calls a number valid that the collect API refuses.
type brandRange struct {
	Lo      string     `json:"lo"`
	Hi      string     `json:"hi"`
	Brand   card.Brand `json:"brand"`
	Lengths []int      `json:"lengths"`
	Gaps    []int      `json:"gaps"` // group sizes of the longest number; the rest in fours
	CVV     int        `json:"cvv"`
}

func span(lo, hi int) []int {
	var out []int
	for n := lo; n <= hi; n++ {
		out = append(out, n)
	}
	return out
}

var (
	fours    = []int{4, 4, 4, 4}
	amexGaps = []int{4, 6, 5}
)

// brandTable mirrors card's iinTable (see its order rules).
var brandTable = []brandRange{
	{"4", "4", card.Visa, []int{13, 16, 19}, fours, 3},
	{"2200", "2204", card.Mir, span(16, 19), fours, 3},
	{"2221", "2720", card.Mastercard, []int{16}, fours, 3},
	{"51", "55", card.Mastercard, []int{16}, fours, 3},
	{"34", "34", card.Amex, []int{15}, amexGaps, 4},
	{"37", "37", card.Amex, []int{15}, amexGaps, 4},
	{"3528", "3589", card.JCB, span(16, 19), fours, 3},
	{"300", "305", card.Diners, span(14, 19), []int{4, 6, 4}, 3},
	{"36", "36", card.Diners, span(14, 19), []int{4, 6, 4}, 3},
	{"38", "39", card.Diners, span(14, 19), []int{4, 6, 4}, 3},
	{"6011", "6011", card.Discover, span(16, 19), fours, 3},
	{"622126", "622925", card.Discover, span(16, 19), fours, 3},
	{"644", "649", card.Discover, span(16, 19), fours, 3},
	{"65", "65", card.Discover, span(16, 19), fours, 3},
	{"62", "62", card.UnionPay, span(16, 19), fours, 3},
	{"50", "50", card.Maestro, span(12, 19), fours, 3},
	{"56", "58", card.Maestro, span(12, 19), fours, 3},
	{"6", "6", card.Maestro, span(12, 19), fours, 3},
}

// brandsJS is the table as the first statement of frame.js.
func brandsJS() []byte {
	b, err := json.Marshal(brandTable)
	if err != nil {
		panic(err) // a fixed table of strings and ints always marshals
	}
	return append(append([]byte("const CHD_BRANDS = "), b...), ";\n"...)
}
