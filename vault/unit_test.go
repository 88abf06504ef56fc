package vault

import (
	"context"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"
)

var envSeq atomic.Int64

// newUnitEnv: miniredis and LocalCipher. Every env is its own, so
// "dedicated" changes nothing; a transit "seal" is injected through faults.
func newUnitEnv(t testing.TB, o envOptions) *env {
	mr := miniredis.RunT(t)
	rdb := NewRedisClient(RedisOptions{Addrs: []string{mr.Addr()}})
	t.Cleanup(func() { rdb.Close() })
	lc, err := NewLocalCipher()
	if err != nil {
		t.Fatal(err)
	}
	e := buildEnv(t, o, rdb, lc, "u"+time.Now().Format("150405")+"x"+strconv.FormatInt(envSeq.Add(1), 10), mr.FastForward)
	mr.SetTime(e.clock.Now())
	e.stopRedis = mr.Close
	e.sealTransit = func() {
		for _, op := range []string{"encrypt:card", "encrypt:cvv", "decrypt:card", "decrypt:cvv", "hmac"} {
			e.faults.fail(op, &TransitError{Op: op, Status: 503, Reason: "sealed (simulated)", err: ErrUnavailable})
		}
		e.faults.fail("ping", ErrUnavailable)
	}
	return e
}

func TestSuiteMiniredisLocalCipher(t *testing.T) {
	runSuite(t, func(t *testing.T, o envOptions) *env { return newUnitEnv(t, o) })
}

// quietRedis drops go-redis's own log lines (dial failures in the outage
// tests); chdproxy's binary routes them through its redacting logger.
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	os.Exit(m.Run())
}
