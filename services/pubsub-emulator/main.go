// Command pubsub-emulator serves Google's in-memory Pub/Sub fake (pstest) over gRPC on a
// loopback port, for `make run` and the integration tests, where the gcloud emulator is not
// installed. Clients reach it with PUBSUB_EMULATOR_HOST=127.0.0.1:<port>.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"cloud.google.com/go/pubsub/v2/pstest"
)

func main() {
	host := flag.String("host", "127.0.0.1", "address to listen on (loopback only by default)")
	port := flag.Int("port", 8085, "port to listen on; 0 picks a free one")
	flag.Parse()

	server := pstest.NewServerWithAddress(fmt.Sprintf("%s:%d", *host, *port))
	defer server.Close()
	// The one line callers wait for: the address, once the server accepts connections.
	fmt.Printf("listening on %s\n", server.Addr)

	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	log.Print("pubsub-emulator: stopping")
}
