package workflow

import (
	"crypto/sha256"
	"testing"

	"github.com/stretchr/testify/require"
)

const canonicalBase = `{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"id": "${ input.id }", "n": 1.50}}]}`

func TestCanonical(t *testing.T) {
	t.Parallel()
	d := mustParse(t, canonicalBase)
	require.Equal(t,
		`{"name":"greet","steps":[{"input":{"id":"${ input.id }","n":1.50},"name":"lookup","type":"call","url":"https://h/lookup"}]}`,
		string(d.Canonical()))
	require.Equal(t, sha256.Sum256(d.Canonical()), d.Hash())
}

func TestCanonicalStrings(t *testing.T) {
	t.Parallel()
	d := mustParse(t, `{"name": "x", "description": "tab\t nl\n quote\" bs\\ ctl\u0001 slash\/ uni\u00e9 é <&> \u2028", "steps": [{"name": "s", "type": "sleep", "duration": "1s"}]}`)
	require.Equal(t,
		`{"description":"tab\t nl\n quote\" bs\\ ctl\u0001 slash/ unié é <&> `+"\u2028"+`","name":"x","steps":[{"duration":"1s","name":"s","type":"sleep"}]}`,
		string(d.Canonical()))
}

func TestHashIgnoresFormatting(t *testing.T) {
	t.Parallel()
	base := mustParse(t, canonicalBase).Hash()
	for _, variant := range []string{
		"{\n  \"steps\": [ { \"url\": \"https://h/lookup\", \"type\": \"call\", \"name\": \"lookup\",\n \"input\": {\"n\": 1.50, \"id\": \"${ input.id }\"} } ],\n  \"name\": \"greet\"\n}\n",
		`{"name":"greet","steps":[{"name":"lookup","type":"call","url":"https://h/lookup","input":{"id":"${ input.id }","n":1.50}}]}`,
		`{"name": "\u0067reet", "steps": [{"name": "lookup", "type": "call", "url": "https:\/\/h\/lookup", "input": {"id": "${ input.id }", "n": 1.50}}]}`,
	} {
		require.Equal(t, base, mustParse(t, variant).Hash(), variant)
	}
}

func TestHashChangesWithAnyValue(t *testing.T) {
	t.Parallel()
	base := mustParse(t, canonicalBase).Hash()
	for _, variant := range []string{
		`{"name": "greet2", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"id": "${ input.id }", "n": 1.50}}]}`,
		`{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"id": "${ input.id }", "n": 1.5}}]}`,
		`{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"id": "${ input.id}", "n": 1.50}}]}`,
		`{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"ID": "${ input.id }", "n": 1.50}}]}`,
		`{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "method": "POST", "input": {"id": "${ input.id }", "n": 1.50}}]}`,
		`{"name": "greet", "steps": [{"name": "lookup", "type": "call", "url": "https://h/lookup", "input": {"id": "${ input.id }", "n": [1.50]}}]}`,
	} {
		require.NotEqual(t, base, mustParse(t, variant).Hash(), variant)
	}
}

func TestCanonicalRoundTrips(t *testing.T) {
	t.Parallel()
	d := mustParse(t, canonicalBase)
	again := mustParse(t, string(d.Canonical()))
	require.Equal(t, d.Canonical(), again.Canonical())
}
