package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// flowResult is a batch of runs under a workflow concurrency limit.
type flowResult struct {
	runs, steps, keys int
	elapsed           time.Duration
	// finished is, for each key, when its last run's last step was
	// answered, from the first start.
	finished []time.Duration
}

// postFlowWorkflow posts bench_flow: perRun call steps, at most limit
// active runs per value of input.k.
func postFlowWorkflow(base, stepBase string, perRun, limit int) error {
	steps := make([]map[string]any, perRun)
	for i := range steps {
		steps[i] = map[string]any{"name": fmt.Sprintf("s%d", i), "type": "call", "url": fmt.Sprintf("%s/step/%d", stepBase, i)}
	}
	body, _ := json.Marshal(map[string]any{
		"name": "bench_flow", "steps": steps,
		"concurrency": []map[string]any{{"key": "${ input.k }", "limit": limit}},
	})
	res, err := http.Post(base+"/v1/workflows", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated && res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		return fmt.Errorf("post flow workflow: %s: %s", res.Status, b)
	}
	return nil
}

// measureFlow starts n runs of bench_flow over keys keys (run i has key
// i mod keys) through clients concurrent clients, waits until every step
// was answered, and reports steps per second and when each key finished.
func measureFlow(base string, steps *stepServer, n, perRun, keys, clients int) (flowResult, error) {
	done := steps.expect(n * perRun)
	keyOf := make(map[string]int, n)
	var mu sync.Mutex
	var firstErr error
	jobs := make(chan int)
	var wg sync.WaitGroup
	begin := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				id, err := startFlowRun(base, i%keys)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				keyOf[id] = i % keys
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		if firstErr != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		return flowResult{}, firstErr
	}
	select {
	case <-done:
	case <-time.After(20 * time.Minute):
		return flowResult{}, errors.New("the runs did not finish within 20 minutes")
	}
	res := flowResult{runs: n, steps: n * perRun, keys: keys}
	last := make([]time.Time, keys)
	steps.mu.Lock()
	for id, rt := range steps.runs {
		k := keyOf[id]
		if a := rt.answered[len(rt.answered)-1]; a.After(last[k]) {
			last[k] = a
		}
	}
	steps.mu.Unlock()
	for _, l := range last {
		res.finished = append(res.finished, l.Sub(begin))
	}
	res.elapsed = slices.Max(res.finished)
	return res, nil
}

func startFlowRun(base string, key int) (string, error) {
	res, err := http.Post(base+"/v1/runs", "application/json", strings.NewReader(fmt.Sprintf(`{"workflow":"bench_flow","input":{"k":"k-%d"}}`, key)))
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var run struct {
		ID string `json:"id"`
	}
	if res.StatusCode != http.StatusCreated {
		b, _ := io.ReadAll(res.Body)
		return "", fmt.Errorf("start run: %s: %s", res.Status, b)
	}
	if err := json.NewDecoder(res.Body).Decode(&run); err != nil {
		return "", err
	}
	return run.ID, nil
}

func printFlowReport(o options, r flowResult) {
	s := slices.Clone(r.finished)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[int(float64(len(s)-1)*p)] }
	fmt.Printf("\n## Flow control: %d runs over %d keys, at most %d active run per key\n\n", r.runs, r.keys, o.flowLimit)
	fmt.Printf("| measure | value |\n|---|---|\n")
	fmt.Printf("| steps per second, end to end | %.0f |\n", float64(r.steps)/r.elapsed.Seconds())
	fmt.Printf("| runs per second | %.0f |\n", float64(r.runs)/r.elapsed.Seconds())
	fmt.Printf("| a key's last run finished, earliest key | %.2f s |\n", s[0].Seconds())
	fmt.Printf("| a key's last run finished, median key | %.2f s |\n", q(.5).Seconds())
	fmt.Printf("| a key's last run finished, latest key | %.2f s |\n", s[len(s)-1].Seconds())
	fmt.Printf("| spread across keys (latest − earliest) / latest | %.1f %% |\n", 100*(s[len(s)-1]-s[0]).Seconds()/s[len(s)-1].Seconds())
	fmt.Printf("\n%d call steps per run; %d concurrent clients start the runs; worker concurrency %s.\n", o.steps, o.clients, concurrencyLabel(o.concurrency))
}
