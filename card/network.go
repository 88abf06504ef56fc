package card

// Network is a wallet's card network, in the canonical casing of the
// SmartPayments documentation. It is not secret.
type Network string

// The known networks.
const (
	NetworkVisa       Network = "Visa"
	NetworkMastercard Network = "Mastercard"
	NetworkAmex       Network = "Amex"
	NetworkDiscover   Network = "Discover"
	NetworkJCB        Network = "JCB"
	NetworkInterac    Network = "Interac"
	NetworkMaestro    Network = "Maestro"
	NetworkMir        Network = "Mir"
	NetworkUnionPay   Network = "UnionPay"
	NetworkElectron   Network = "Electron"
	NetworkElo        Network = "Elo"
)

// networks maps each accepted spelling, lower-cased, to its canonical form.
var networks = map[string]Network{
	"visa":       NetworkVisa,
	"mastercard": NetworkMastercard,
	"amex":       NetworkAmex,
	"discover":   NetworkDiscover,
	"jcb":        NetworkJCB,
	"interac":    NetworkInterac,
	"maestro":    NetworkMaestro,
	"mir":        NetworkMir,
	"unionpay":   NetworkUnionPay,
	"electron":   NetworkElectron,
	"elo":        NetworkElo,
	// Apple Pay's PKPaymentNetwork spelling of UnionPay.
	"chinaunionpay": NetworkUnionPay,
}

// maxNetworkLen is the longest accepted spelling; it bounds the lower-casing.
const maxNetworkLen = len("chinaunionpay")

// ParseNetwork returns the canonical Network for s, matched case-insensitively
// against the known set ("VISA" and "visa" give "Visa"; Google Pay sends
// upper case, Apple Pay "MasterCard" and "AmEx"). Apple Pay's "ChinaUnionPay"
// gives "UnionPay". No trimming. Errors (ErrNetwork) never contain the input.
func ParseNetwork(s string) (Network, error) {
	if len(s) == 0 || len(s) > maxNetworkLen {
		return "", ErrNetwork
	}
	// ASCII-only lower-casing: strings.ToLower would fold non-ASCII letters
	// such as the Kelvin sign onto ASCII ones.
	var buf [maxNetworkLen]byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	if n, ok := networks[string(buf[:len(s)])]; ok {
		return n, nil
	}
	return "", ErrNetwork
}

// String returns the canonical name.
func (n Network) String() string { return string(n) }
