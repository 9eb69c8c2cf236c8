// Command hello is a tiny step server for Durable's quick start: two call
// steps, "lookup" and "greet", on 127.0.0.1:9000.
//
// Each handler shows the step protocol from the endpoint's side: it reads
// the JSON body Durable posts, checks the Standard Webhooks signature when
// WEBHOOK_SECRET holds Durable's signing secret, and answers with an
// envelope of output, context and logs.
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
)

// stepRequest is the part of Durable's request body these steps use.
type stepRequest struct {
	RunID   string          `json:"run_id"`
	Step    string          `json:"step"`
	Attempt int             `json:"attempt"`
	Input   json.RawMessage `json:"input"`
	Context json.RawMessage `json:"context"`
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9000", "listen address")
	flag.Parse()
	secret := os.Getenv("WEBHOOK_SECRET")
	if secret == "" {
		log.Print("WEBHOOK_SECRET is not set: signatures are not checked (set it to Durable's whsec_ secret to check them)")
	}

	http.HandleFunc("POST /lookup", step(secret, func(req stepRequest) any {
		var input struct {
			UserID int `json:"user_id"`
		}
		_ = json.Unmarshal(req.Input, &input)
		return map[string]any{
			"output":  map[string]any{"user_id": input.UserID, "name": "Ada", "email": "ada@example.com"},
			"context": map[string]any{"looked_up": true},
			"logs":    []map[string]any{{"level": "info", "message": "found the user"}},
		}
	}))
	http.HandleFunc("POST /greet", step(secret, func(req stepRequest) any {
		var input struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		}
		_ = json.Unmarshal(req.Input, &input)
		return map[string]any{"output": map[string]any{"message": fmt.Sprintf("Hello, %s! (sent to %s)", input.Name, input.Email)}}
	}))
	log.Printf("hello steps listening on http://%s (POST /lookup, POST /greet)", *addr)
	log.Fatal(http.ListenAndServe(*addr, nil))
}

// step wraps a step's logic: read and verify the request, answer JSON.
func step(secret string, handle func(stepRequest) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			http.Error(w, "read body", http.StatusBadRequest)
			return
		}
		if secret != "" && !verify(secret, r.Header, body) {
			// A 4xx other than 408 and 429 fails the step for good.
			http.Error(w, `{"error": {"message": "bad signature"}}`, http.StatusUnauthorized)
			return
		}
		var req stepRequest
		if err := json.Unmarshal(body, &req); err != nil {
			http.Error(w, "bad request body", http.StatusBadRequest)
			return
		}
		log.Printf("run %s step %s attempt %d (webhook-id %s)", req.RunID, req.Step, req.Attempt, r.Header.Get("webhook-id"))
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(handle(req))
	}
}

// verify checks a Standard Webhooks v1 signature: base64 HMAC-SHA256 of
// "id.timestamp.body" with the secret's key. Any library for the scheme
// does the same (and also checks the timestamp's age).
func verify(secret string, h http.Header, body []byte) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.", h.Get("webhook-id"), h.Get("webhook-timestamp"))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, sig := range strings.Fields(h.Get("webhook-signature")) {
		if hmac.Equal([]byte(sig), []byte(want)) {
			return true
		}
	}
	return false
}
