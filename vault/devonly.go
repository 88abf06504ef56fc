package vault

// devOnly is implemented by transits that must never run in production
// (LocalCipher, and a Coalescer wrapping one).
type devOnly interface {
	DevOnly() bool
}

// isDevOnly reports whether t declares itself development-only.
func isDevOnly(t Transit) bool {
	d, ok := t.(devOnly)
	return ok && d.DevOnly()
}

// DevOnly reports whether the vault encrypts with the dev-only local cipher, which
// production (`chdproxy serve`) refuses.
func (v *Vault) DevOnly() bool { return isDevOnly(v.transit) }
