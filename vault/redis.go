package vault

import (
	"crypto/tls"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
)

// RedisOptions configures NewRedisClient. Zero fields take the defaults
// noted; the timeouts are short on purpose: a payment path waits on Redis,
// and a dead Redis must turn into a fast 503, not a hung request.
type RedisOptions struct {
	// Addrs: one address for a single server, several for a Cluster, or
	// the Sentinels when MasterName is set.
	Addrs      []string
	MasterName string
	Username   string
	Password   string
	DB         int
	TLSConfig  *tls.Config

	DialTimeout  time.Duration // default 1s
	ReadTimeout  time.Duration // default 500ms
	WriteTimeout time.Duration // default 500ms
	PoolTimeout  time.Duration // wait for a free connection; default 1s
	PoolSize     int           // default go-redis's (10 per GOMAXPROCS)
	MinIdleConns int
	// MaxRetries of a failed command on a network error; default 1, -1 for
	// none. Writes stay correct under a retry: the record write is
	// idempotent (see Store) and consumption is a single GETDEL.
	MaxRetries int
}

// NewRedisClient returns a go-redis UniversalClient (single, Sentinel or
// Cluster, from opts.Addrs/MasterName) with the vault's timeouts, and
// without the client-identity and maintenance-notification handshakes
// (fewer round trips, nothing to trip over on managed or proxied Redis).
func NewRedisClient(opts RedisOptions) redis.UniversalClient {
	def := func(d, v time.Duration) time.Duration {
		if d > 0 {
			return d
		}
		return v
	}
	retries := opts.MaxRetries
	if retries == 0 {
		retries = 1
	}
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 opts.Addrs,
		MasterName:            opts.MasterName,
		Username:              opts.Username,
		Password:              opts.Password,
		DB:                    opts.DB,
		TLSConfig:             opts.TLSConfig,
		DialTimeout:           def(opts.DialTimeout, time.Second),
		ReadTimeout:           def(opts.ReadTimeout, 500*time.Millisecond),
		WriteTimeout:          def(opts.WriteTimeout, 500*time.Millisecond),
		PoolTimeout:           def(opts.PoolTimeout, time.Second),
		ContextTimeoutEnabled: true,
		PoolSize:              opts.PoolSize,
		MinIdleConns:          opts.MinIdleConns,
		MaxRetries:            retries,
		MinRetryBackoff:       8 * time.Millisecond,
		MaxRetryBackoff:       64 * time.Millisecond,
		DialerRetries:         1,
		DialerRetryTimeout:    50 * time.Millisecond,
		DisableIdentity:       true,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	})
}
