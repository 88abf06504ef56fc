package vault

import (
	"testing"

	"github.com/chdproxy/chdproxy/internal/testenv"
)

// The store suite on the Redis topologies of a scaled-out deployment, through
// the same NewRedisClient (go-redis UniversalClient) that serve uses: a
// Sentinel set (MasterName set) and a three-master Cluster (several Addrs).
// LocalCipher stands in for Vault: the topology changes nothing on that side.

func sentinelRedis(t testing.TB) (RedisOptions, func()) {
	s := testenv.RedisSentinel(t)
	return RedisOptions{Addrs: s.Addrs, MasterName: s.MasterName}, s.Stop
}

func clusterRedis(t testing.TB) (RedisOptions, func()) {
	s := testenv.RedisCluster(t)
	return RedisOptions{Addrs: s.Addrs}, s.Stop
}

func TestSuiteRedisSentinelLocalCipher(t *testing.T) {
	runSuite(t, realEnvsOn(t, false, sentinelRedis))
}

func TestSuiteRedisClusterLocalCipher(t *testing.T) {
	runSuite(t, realEnvsOn(t, false, clusterRedis))
}
