// Command pubsub-emulator serves Google's in-memory Pub/Sub fake (pstest) over gRPC on a
// loopback port, for `make run` and the integration tests, where the gcloud emulator is not
// installed. Clients reach it with PUBSUB_EMULATOR_HOST=127.0.0.1:<port>.
//
// pstest delivers the messages of an ordering key in publish-time order, so two messages
// stamped with the same instant could be delivered in either order. The clock given to it
// here never returns the same instant twice, which makes per-key order exact.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"cloud.google.com/go/pubsub/v2/pstest"
)

// strictClock returns time.Now, moved forward by a nanosecond whenever the clock has not
// advanced since the previous reading.
type strictClock struct {
	mu   sync.Mutex
	last time.Time
}

func (c *strictClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := time.Now()
	if !t.After(c.last) {
		t = c.last.Add(time.Nanosecond)
	}
	c.last = t
	return t
}

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (loopback only by default)")
	port := flag.Int("port", 8085, "port to listen on; 0 picks a free one")
	flag.Parse()

	server := pstest.NewServerWithAddress(fmt.Sprintf("%s:%d", *host, *port))
	defer server.Close()
	clock := &strictClock{}
	server.SetTimeNowFunc(clock.now)
	// The one line callers wait for: the address, once the server accepts connections.
	fmt.Printf("listening on %s\n", server.Addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	log.Print("pubsub-emulator: stopping")
}
