//go:build tools

package internal

import (
	_ "github.com/alicebob/miniredis/v2"
	_ "github.com/gorilla/mux"
	_ "github.com/hashicorp/vault/api"
	_ "github.com/prometheus/client_golang/prometheus"
	_ "github.com/redis/go-redis/v9"
	_ "github.com/sirupsen/logrus"
	_ "golang.org/x/crypto/chacha20poly1305"
	_ "golang.org/x/crypto/hkdf"
	_ "golang.org/x/time/rate"
	_ "gopkg.in/yaml.v3"
)
