package vault

import (
	"testing"
)

func BenchmarkTokenizeCard(b *testing.B) {
	e := newUnitEnv(b, envOptions{})
	in := mustCard(b, visaPAN, visaCVV, holderName)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.v.TokenizeCard(bg, "m_alpha", in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkDetokenizeCard(b *testing.B) {
	e := newUnitEnv(b, envOptions{})
	m, err := e.v.TokenizeCard(bg, "m_alpha", mustCard(b, visaPAN, "", holderName))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := detokenize(e.v, "m_alpha", m.Token, false); err != nil {
				b.Fatal(err)
			}
		}
	})
}
