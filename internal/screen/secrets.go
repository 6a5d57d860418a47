package screen

import "regexp"

// secretDetectors are the shapes of credentials the providers document.
// Each is anchored on a prefix the issuer puts in every key, so that
// ordinary text does not match; a credential without such a prefix (a
// bare 40-character hex string) is not caught.
var secretDetectors = []struct {
	name string
	re   *regexp.Regexp
}{
	// PEM private keys: PKCS #1, #8, EC, DSA, OpenSSH, encrypted, PGP.
	{"private-key", regexp.MustCompile(`-----BEGIN (?:RSA |EC |DSA |OPENSSH |ENCRYPTED |PGP )?PRIVATE KEY(?: BLOCK)?-----`)},
	// Anthropic: sk-ant-api03-…, sk-ant-admin01-…
	{"anthropic-key", regexp.MustCompile(`\bsk-ant-[a-z]+\d{2}-[A-Za-z0-9_\-]{20,}`)},
	// OpenAI: sk-…, sk-proj-…, sk-svcacct-… (the older ones 48 characters
	// after "sk-"; project keys longer, with - and _).
	{"openai-key", regexp.MustCompile(`\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}`)},
	// AWS access key ids: AKIA (long-term) and ASIA (temporary).
	{"aws-access-key", regexp.MustCompile(`\b(?:AKIA|ASIA)[0-9A-Z]{16}\b`)},
	// GitHub: classic ghp_/gho_/ghu_/ghs_/ghr_ tokens and fine-grained
	// github_pat_ ones.
	{"github-token", regexp.MustCompile(`\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{60,})`)},
	// Slack bot, user, app and refresh tokens.
	{"slack-token", regexp.MustCompile(`\bxox[abprs]-[A-Za-z0-9-]{10,}`)},
	// Google API keys.
	{"google-api-key", regexp.MustCompile(`\bAIza[0-9A-Za-z_\-]{35}\b`)},
	// Stripe secret and restricted keys (live and test).
	{"stripe-key", regexp.MustCompile(`\b(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{20,}`)},
	// Hugging Face user access tokens.
	{"huggingface-token", regexp.MustCompile(`\bhf_[A-Za-z0-9]{34,}\b`)},
}
