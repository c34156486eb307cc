package types

import "context"

// The context a listener gives the requests it hands to the proxy: which
// app's port the connection came in on (a raw TCP service's http handler,
// a Flycast address) and whether it is private (Flycast). The listeners
// (tcpproxy) set it; the proxy reads it. Neither imports the other.

type listenerAppKey struct{}

type privateListenerKey struct{}

// WithListener returns ctx marked as that of a listener of app's port;
// private marks a Flycast (private network) listener.
func WithListener(ctx context.Context, app string, private bool) context.Context {
	ctx = context.WithValue(ctx, listenerAppKey{}, app)
	if private {
		ctx = context.WithValue(ctx, privateListenerKey{}, true)
	}
	return ctx
}

// ListenerApp returns the app whose port a request came in on, if a
// listener of an app's port set it.
func ListenerApp(ctx context.Context) (string, bool) {
	a, ok := ctx.Value(listenerAppKey{}).(string)
	return a, ok
}

// PrivateListener reports whether a request came in on a private
// (Flycast) listener.
func PrivateListener(ctx context.Context) bool {
	v, _ := ctx.Value(privateListenerKey{}).(bool)
	return v
}
