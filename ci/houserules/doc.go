// Package houserules holds tests, and nothing else, that keep rules of the repository's shape
// which the compiler cannot: each reads the source and names the lines that break a rule, with
// what to use instead. They run with `make test` like any other test.
package houserules
