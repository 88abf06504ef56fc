package card

import (
	"errors"
	"strings"
	"testing"

	"github.com/chdproxy/chdproxy/internal/testcards"
)

type holderCase struct {
	name string
	in   string
	want string
	err  error
}

var holderCases = []holderCase{
	{name: "a plain name is valid", in: "John Doe", want: "John Doe"},
	{name: "surrounding white space is trimmed", in: "  John Doe \n", want: "John Doe"},
	{name: "precomposed accents are valid", in: "Zoë Saldaña", want: "Zoë Saldaña"},
	{name: "combining marks are valid", in: "Zoe\u0308 Saldan\u0303a", want: "Zoe\u0308 Saldan\u0303a"},
	{name: "an apostrophe is valid", in: "Seán O'Brien", want: "Seán O'Brien"},
	{name: "a typographic apostrophe is valid", in: "Seán O’Brien", want: "Seán O’Brien"},
	{name: "a hyphen is valid", in: "Jean-Luc Picard", want: "Jean-Luc Picard"},
	{name: "initials with dots are valid", in: "J. R. R. Tolkien", want: "J. R. R. Tolkien"},
	{name: "a Japanese name with an ideographic space is valid", in: "山田\u3000太郎", want: "山田\u3000太郎"},
	{name: "a Cyrillic name is valid", in: "Иван Петров", want: "Иван Петров"},
	{name: "an Arabic name is valid", in: "محمد علي", want: "محمد علي"},
	{name: "a single letter is valid", in: "X", want: "X"},
	{name: "64 two-byte runes are valid", in: strings.Repeat("é", 64), want: strings.Repeat("é", 64)},

	{name: "65 runes are too long", in: strings.Repeat("a", 65), err: ErrHolder},
	{name: "an empty name is invalid", in: "", err: ErrHolder},
	{name: "only spaces are invalid", in: "   ", err: ErrHolder},
	{name: "only punctuation is invalid", in: ". - '", err: ErrHolder},
	{name: "a pasted PAN is invalid", in: testcards.Success, err: ErrHolder},
	{name: "a pasted PAN with spaces is invalid", in: "4012 0000 0000 3010", err: ErrHolder},
	{name: "a name with 4 digits is invalid", in: "John 4012", err: ErrHolder},
	{name: "a name with one digit is invalid", in: "John Doe 3", err: ErrHolder},
	{name: "fullwidth digits are invalid", in: "John ４０１２", err: ErrHolder},
	{name: "Arabic-Indic digits are invalid", in: "محمد ٤٠١٢", err: ErrHolder},
	{name: "a tab inside is invalid", in: "John\tDoe", err: ErrHolder},
	{name: "a newline inside is invalid", in: "John\nDoe", err: ErrHolder},
	{name: "a NUL byte is invalid", in: "John\x00Doe", err: ErrHolder},
	{name: "a DEL character is invalid", in: "John\x7fDoe", err: ErrHolder},
	{name: "a zero-width space is invalid", in: "John\u200bDoe", err: ErrHolder},
	{name: "a right-to-left override is invalid", in: "John\u202eeoD", err: ErrHolder},
	{name: "invalid UTF-8 is invalid", in: "John \xffDoe", err: ErrHolder},
	{name: "markup is invalid", in: "<script>alert</script>", err: ErrHolder},
	{name: "an at sign is invalid", in: "john@example", err: ErrHolder},
	{name: "an underscore is invalid", in: "John_Doe", err: ErrHolder},
	{name: "an emoji is invalid", in: "John 😀", err: ErrHolder},
}

func TestParseHolder(t *testing.T) {
	for _, tc := range holderCases {
		t.Run(tc.name, func(t *testing.T) {
			h, err := ParseHolder(tc.in)
			if !errors.Is(err, tc.err) {
				t.Fatalf("got error %v, want %v", err, tc.err)
			}
			if got := h.Reveal(); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if h.IsZero() != (tc.err != nil) {
				t.Fatalf("IsZero: got %v, want %v", h.IsZero(), tc.err != nil)
			}
		})
	}
}

func TestHolderFromBytes(t *testing.T) {
	b := []byte("John Doe")
	h := HolderFromBytes(b)
	clear(b)
	if got := h.Reveal(); got != "John Doe" {
		t.Fatalf("got %q, want %q", got, "John Doe")
	}
	if !HolderFromBytes(nil).IsZero() {
		t.Fatal("empty bytes must give the zero Holder")
	}
}
