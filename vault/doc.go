// Package vault is chdproxy's token vault: it turns card data (PAN, expiry,
// holder, CVV) and wallet payloads (Apple Pay / Google Pay DPANs) into
// opaque tokens, and back for injection.
//
// Card data is encrypted by a Transit — Vault's transit engine (VaultTransit)
// in production, a process-local AEAD (LocalCipher) in development — with a
// key derived per merchant and the token id as associated data, so a
// ciphertext decrypts only in its own record of its own merchant. Records
// live in Redis (Store) with only ciphertext and non-sensitive metadata; the
// CVV has its own short-lived key and is deleted at first use; a wallet token
// is deleted at first use.
//
// Errors carry no data; match them with errors.Is against the Err* values.
package vault
