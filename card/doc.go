// Package card holds the cardholder-data types of chdproxy and their validation.
//
// PAN, CVV, Holder and DPAN never print their contents: every fmt verb, JSON,
// text and slog encodings yield a fixed placeholder:
//
//	PAN "[PAN]", CVV "[CVV]", Holder "[HOLDER]", DPAN "[DPAN]"
//
// Their bytes sit behind a pointer to a string type, so fmt printing a struct
// that holds one in an unexported field shows an address, never the data, for
// every verb. The only way out is Reveal, which belongs at the Vault and
// injection boundaries.
//
// Errors are the sentinels of this package (*Error): a stable code and a fixed
// message, never the input. No card input is passed through strconv or into an
// error message.
//
// The package imports no other package of chdproxy.
package card
