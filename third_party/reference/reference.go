// Package reference stands in for github.com/distribution/reference in
// dockerlogger's build (see the replace directive in ../../go.mod): the
// only use of it in everything dockerlogger links is the type of one
// field in Docker's api/types/backend (PullConfig's Tag, which no logger
// reaches), yet the real package compiles a dozen regular expressions
// when every process starts: 414 KB allocated at start in every logger
// process, every container. It holds the interfaces alone, declared as
// the real package declares them; any code that needs more from it does
// not build, so nothing can call a parser that is not here.
package reference

// Reference is an opaque object reference identifier that may include
// modifiers such as a hostname, name, tag, and digest.
type Reference interface {
	String() string
}

// Named is an object with a full name.
type Named interface {
	Reference
	Name() string
}

// Tagged is an object which has a tag.
type Tagged interface {
	Reference
	Tag() string
}

// NamedTagged is an object including a name and tag.
type NamedTagged interface {
	Named
	Tag() string
}
