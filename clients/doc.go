// Package clients holds the generated client SDKs (swift/, kotlin/) and the
// tests that prove them: the Kotlin SDK compiled and run against a live
// server, the Swift sources parsed with a Swift grammar.
package clients
