// Package clients holds the generated client SDKs (swift/, kotlin/) and the
// tests that prove them against a live server: the Kotlin SDK compiled with
// Maven and its JUnit tests run (its own, generated into kotlin/src/test,
// and the example's, kotlin-tests/*.kt, copied beside them), the Swift SDK
// compiled with swiftc (Swift 6 language mode, and Swift 5 mode without a
// warning) and its XCTest tests run through swift/test.sh.
package clients
