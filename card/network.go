package card

// Network is a wallet's card network, spelled exactly as the wallet sent it
// (Apple Pay "MasterCard", Google Pay "MASTERCARD"): SmartPayments asks for the
// wallet's own value, so the proxy stores and injects it unchanged. It is not
// secret.
type Network string

// The known networks, in the casing of the SmartPayments examples.
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

// networks holds each accepted spelling, lower-cased, with its network.
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

// ParseNetwork checks s case-insensitively against the known set (Google Pay
// sends upper case, Apple Pay "MasterCard", "AmEx" and "ChinaUnionPay") and
// returns it as sent: rewriting "MasterCard" to "Mastercard" would change a
// value SmartPayments reads. No trimming. Errors (ErrNetwork) never contain
// the input.
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
	if _, ok := networks[string(buf[:len(s)])]; ok {
		return Network(s), nil
	}
	return "", ErrNetwork
}

// String returns the network as the wallet spelled it.
func (n Network) String() string { return string(n) }
