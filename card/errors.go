package card

// Error is a card validation error: a stable code and a fixed message, never
// the input. Compare with errors.Is against the sentinels below.
type Error struct{ code, msg string }

// Error returns the fixed message.
func (e *Error) Error() string { return e.msg }

// Code returns the stable machine-readable code, e.g. "invalid_card_number".
func (e *Error) Code() string { return e.code }

// The validation errors. Their text is fixed and never contains input.
var (
	// ErrNumberFormat: empty, non-digits, non-ASCII digits, bad separators.
	ErrNumberFormat = &Error{"invalid_card_number", "card number is not a valid number"}
	// ErrNumberLength: not 12..19 digits, or a length the brand does not issue.
	ErrNumberLength = &Error{"invalid_card_length", "card number length is not valid for its brand"}
	// ErrNumberChecksum: the Luhn check digit is wrong.
	ErrNumberChecksum = &Error{"invalid_card_checksum", "card number check digit is wrong"}
	// ErrBrandUnknown: no supported brand issues this prefix.
	ErrBrandUnknown = &Error{"unsupported_card_brand", "card brand is not supported"}
	// ErrExpMonth: the month is not 1..12 / 01..12.
	ErrExpMonth = &Error{"invalid_exp_month", "expiry month is not valid"}
	// ErrExpYear: the year is not 2 or 4 digits, or is too far ahead.
	ErrExpYear = &Error{"invalid_exp_year", "expiry year is not valid"}
	// ErrExpired: the expiry month is before the current month.
	ErrExpired = &Error{"card_expired", "card has expired"}
	// ErrCVV: not exactly 3 digits (4 for Amex).
	ErrCVV = &Error{"invalid_cvv", "card security code is not valid"}
	// ErrHolder: empty, too long, or characters a name does not have.
	ErrHolder = &Error{"invalid_card_holder", "card holder name is not valid"}
	// ErrDPAN: not base64, or a decoded size out of bounds.
	ErrDPAN = &Error{"invalid_dpan", "wallet payload is not valid"}
	// ErrNetwork: not one of the known card networks.
	ErrNetwork = &Error{"invalid_network", "payment network is not supported"}
)
