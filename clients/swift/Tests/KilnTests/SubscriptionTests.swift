// Hand-written (not generated): the subscription state machine, with the
// test playing the server through scripted sockets (ScriptedSockets): the
// graphql-transport-ws exchange, ping/pong, errors, completion,
// cancellation, reconnects with backoff, token refresh on 4401/4403, and
// failures that end the stream instead of retrying.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Kiln

final class SubscriptionTests: XCTestCase {
    /// Tiny, exact delays: 1ms, 2ms, 4ms, 4ms...
    let fast = KilnReconnectPolicy(initialDelay: 0.001, maxDelay: 0.004, multiplier: 2, jitter: 0)

    /// A server that refreshes sessions (r1 -> a2/r2) and fails everything else.
    func refreshingServer(_ refreshes: Locked<Int>, ok: Bool = true) -> StubServer {
        StubServer { req in
            guard req.query?.contains("refreshSession") == true else { return StubServer.error("INTERNAL_SERVER_ERROR") }
            refreshes.update { $0 += 1 }
            return ok ? StubServer.data("{\"refreshSession\":\(sessionJSON("a2", "r2"))}") : StubServer.error("UNAUTHENTICATED", "revoked")
        }
    }

    /// Opens the next socket and acknowledges it; returns it and the id of the subscribe that follows.
    func accept(_ sockets: ScriptedSockets, token: String? = nil) async throws -> (ScriptedSocket, String) {
        let s = try await sockets.next()
        let initMessage = try await s.expect("connection_init")
        XCTAssertEqual(initMessage["payload"]?["Authorization"]?.stringValue, token.map { "Bearer \($0)" })
        s.reply("connection_ack")
        let sub = try await s.expect("subscribe")
        return (s, sub["id"]?.stringValue ?? "")
    }

    func testEventsPingPongAndServerComplete() async throws {
        let sockets = ScriptedSockets()
        let server = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }
        let kiln = server.client(webSocket: sockets)
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let first = await states.next()
        XCTAssertEqual(first, .closed(error: nil))

        let events = Collector(kiln.posts.created(where: PostWhereInput { $0.bodyHasPrefix = "live" }))
        let s = try await sockets.next()
        // The upgrade asks for graphql-transport-ws on the ws:// URL.
        XCTAssertEqual(s.request.url?.absoluteString, "ws://\(server.host)/graphql")
        XCTAssertEqual(s.request.value(forHTTPHeaderField: "Sec-WebSocket-Protocol"), "graphql-transport-ws")
        let initMessage = try await s.expect("connection_init")
        XCTAssertEqual(text(initMessage["payload"] ?? .null), "{}") // signed out: no token
        s.reply("connection_ack")
        let sub = try await s.expect("subscribe")
        let id = try XCTUnwrap(sub["id"]?.stringValue)
        XCTAssertTrue(sub["payload"]?["query"]?.stringValue?.hasPrefix("subscription PostCreated(") == true)
        XCTAssertEqual(text(sub["payload"]?["variables"] ?? .null), #"{"where":{"bodyHasPrefix":"live"}}"#)
        await awaitState(&states, until: { $0 == .connected })
        XCTAssertEqual(kiln.subscriptions.state, .connected)

        s.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p1", body: "live 1"))}}")
        let p1 = try await events.next()
        XCTAssertEqual(p1.body, "live 1")
        // The server's ping gets a pong; its pong is ignored.
        s.reply("ping")
        try await s.expect("pong")
        s.reply("pong")
        // An event for an id that is not running (already completed) is ignored.
        s.reply("next", id: "other", payload: "{\"data\":{\"postCreated\":\(postJSON("x"))}}")
        s.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p2", body: "live 2"))}}")
        let p2 = try await events.next()
        XCTAssertEqual(p2.id, "p2")
        // complete from the server ends the stream normally; the last subscription gone, the socket closes.
        s.reply("complete", id: id)
        let error = await events.ended()
        XCTAssertNil(error)
        let code = try await s.closedByClient()
        XCTAssertEqual(code, 1000)
        await awaitState(&states, until: { $0 == .closed(error: nil) })
        XCTAssertEqual(sockets.opened.get(), 1)
    }

    func testOneSocketForAllSubscriptionsAndErrorsEndOnlyTheirOwn() async throws {
        let sockets = ScriptedSockets()
        let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets)
        let created = Collector(kiln.posts.created())
        let (s, createdID) = try await accept(sockets)
        // A second subscription joins the acknowledged connection at once.
        let deleted = Collector(kiln.posts.deleted())
        let sub2 = try await s.expect("subscribe")
        let deletedID = try XCTUnwrap(sub2["id"]?.stringValue)
        XCTAssertNotEqual(createdID, deletedID)
        XCTAssertTrue(sub2["payload"]?["query"]?.stringValue?.contains("postDeleted") == true)

        s.reply("next", id: deletedID, payload: #"{"data":{"postDeleted":"p9"}}"#)
        let gone = try await deleted.next()
        XCTAssertEqual(gone, "p9")
        // An error message ends that subscription with its typed error...
        s.reply("error", id: createdID, payload: #"[{"message":"no","extensions":{"code":"FORBIDDEN"}}]"#)
        let error = await created.ended()
        XCTAssertEqual(error as? KilnError, .forbidden(message: "no"))
        // ...and the other goes on, on the same socket.
        s.reply("next", id: deletedID, payload: #"{"data":{"postDeleted":"p10"}}"#)
        let gone2 = try await deleted.next()
        XCTAssertEqual(gone2, "p10")
        // A next with errors (e.g. RESYNC) ends that subscription too, and tells the server so.
        s.reply("next", id: deletedID, payload: #"{"errors":[{"message":"resync","extensions":{"code":"RESYNC"}}],"data":null}"#)
        let resync = await deleted.ended()
        XCTAssertEqual(resync as? KilnError, .server(code: "RESYNC", message: "resync"))
        let complete = try await s.expect("complete")
        XCTAssertEqual(complete["id"]?.stringValue, deletedID)
        let code = try await s.closedByClient()
        XCTAssertEqual(code, 1000)
        XCTAssertEqual(sockets.opened.get(), 1)
    }

    func testCancellingSendsCompleteAndClosesAfterTheLast() async throws {
        let sockets = ScriptedSockets()
        let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets)
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let a = Collector(kiln.posts.created())
        let (s, aID) = try await accept(sockets)
        let b = Collector(kiln.comments.created())
        let bID = try await s.expect("subscribe")["id"]?.stringValue
        await awaitState(&states, until: { $0 == .connected })

        a.cancel()
        let completeA = try await s.expect("complete")
        XCTAssertEqual(completeA["id"]?.stringValue, aID)
        XCTAssertNil(s.closed, "closed while a subscription still runs")
        b.cancel()
        let completeB = try await s.expect("complete")
        XCTAssertEqual(completeB["id"]?.stringValue, bID)
        let code = try await s.closedByClient()
        XCTAssertEqual(code, 1000)
        await awaitState(&states, until: { $0 == .closed(error: nil) })
        let endA = await a.ended()
        let endB = await b.ended()
        XCTAssertNil(endA)
        XCTAssertNil(endB)

        // The next subscription opens a new socket.
        let d = Collector(kiln.posts.created())
        let (s2, _) = try await accept(sockets)
        d.cancel()
        try await s2.expect("complete")
        let code2 = try await s2.closedByClient()
        XCTAssertEqual(code2, 1000)
        XCTAssertEqual(sockets.opened.get(), 2)
    }

    func testDroppedConnectionReconnectsWithBackoffAndResubscribes() async throws {
        let sockets = ScriptedSockets()
        let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets, reconnect: fast)
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(kiln.posts.created(where: PostWhereInput { $0.authorID = "a1" }))
        let (s1, id) = try await accept(sockets)
        await awaitState(&states, until: { $0 == .connected })
        s1.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p1"))}}")
        _ = try await events.next()

        // The connection drops; four attempts fail before the fifth is acknowledged.
        s1.drop()
        for _ in 0..<2 {
            let s = try await sockets.next()
            try await s.expect("connection_init")
            s.drop()
        }
        let s4 = try await sockets.next()
        try await s4.expect("connection_init")
        s4.serverClose(1001, "going away")
        let s5 = try await sockets.next()
        try await s5.expect("connection_init")
        s5.serverClose(1013, "try again later")
        let seen = await awaitState(&states, until: { $0 == .reconnecting(attempt: 4, delay: 0.004) })
        XCTAssertEqual(seen, [
            .reconnecting(attempt: 1, delay: 0.001), .connecting,
            .reconnecting(attempt: 2, delay: 0.002), .connecting,
            .reconnecting(attempt: 3, delay: 0.004), .connecting,
            .reconnecting(attempt: 4, delay: 0.004),
        ])
        // Resubscribes with the same id and payload once acknowledged.
        let s6 = try await sockets.next()
        try await s6.expect("connection_init")
        s6.reply("connection_ack")
        let again = try await s6.expect("subscribe")
        XCTAssertEqual(again["id"]?.stringValue, id)
        XCTAssertEqual(text(again["payload"]?["variables"] ?? .null), #"{"where":{"authorID":"a1"}}"#)
        await awaitState(&states, until: { $0 == .connected })
        s6.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p2"))}}")
        let p2 = try await events.next()
        XCTAssertEqual(p2.id, "p2")
        // Attempts count again from 1 after an acknowledged connection.
        s6.drop()
        await awaitState(&states, until: { $0 == .reconnecting(attempt: 1, delay: 0.001) })
        let s7 = try await sockets.next()
        events.cancel()
        _ = await events.ended()
        _ = s7
        await awaitState(&states, until: { $0 == .closed(error: nil) })
    }

    func testBackoffPolicy() {
        let p = KilnReconnectPolicy(initialDelay: 0.5, maxDelay: 30, multiplier: 2, jitter: 0)
        XCTAssertEqual((1...9).map { p.delay(attempt: $0) }, [0.5, 1, 2, 4, 8, 16, 30, 30, 30])
        XCTAssertEqual(KilnReconnectPolicy().delay(attempt: 1), 0.5)
        XCTAssertEqual(KilnReconnectPolicy().delay(attempt: 1000), 30)
    }

    func testGivesUpAfterMaxAttempts() async throws {
        let sockets = ScriptedSockets()
        var policy = fast
        policy.maxAttempts = 2
        let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets, reconnect: policy)
        let events = Collector(kiln.posts.created())
        for _ in 0..<3 {
            let s = try await sockets.next()
            s.drop()
        }
        let error = await events.ended()
        guard case .network? = error as? KilnError else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(sockets.opened.get(), 3)
        guard case .closed(error: .network?) = kiln.subscriptions.state else { return XCTFail("\(kiln.subscriptions.state)") }
    }

    func testExpiredTokenRefreshesAndResubscribesOnce() async throws {
        for code in [4401, 4403] {
            let refreshes = Locked(0)
            let sockets = ScriptedSockets()
            let store = signedIn("a1", "r1")
            let kiln = refreshingServer(refreshes).client(session: store, webSocket: sockets, reconnect: fast)
            let events = Collector(kiln.posts.created())
            let (s1, id) = try await accept(sockets, token: "a1")
            s1.serverClose(code, "token expired")
            // Refreshed, then signed in again with the fresh token, and subscribed again.
            let (s2, id2) = try await accept(sockets, token: "a2")
            XCTAssertEqual(id2, id)
            XCTAssertEqual(refreshes.get(), 1)
            XCTAssertEqual(store.load()?.refreshToken, "r2")
            s2.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p1"))}}")
            let p1 = try await events.next()
            XCTAssertEqual(p1.id, "p1")
            // Once per acknowledged connection: a later expiry refreshes again.
            s2.serverClose(code, "token expired")
            let s3 = try await sockets.next()
            try await s3.expect("connection_init")
            XCTAssertEqual(refreshes.get(), 2)
            // A fresh token refused again ends the stream.
            s3.serverClose(code, "still no")
            let error = await events.ended()
            XCTAssertEqual(error as? KilnError, code == 4403
                ? .forbidden(message: "the server refused the subscription's credentials (4403) still no")
                : .unauthenticated(message: "the server refused the subscription's credentials (4401) still no"))
            XCTAssertEqual(sockets.opened.get(), 3)
        }
    }

    func testFailedRefreshEndsWithUnauthenticated() async throws {
        let refreshes = Locked(0)
        let sockets = ScriptedSockets()
        let store = signedIn("a1", "r1")
        let kiln = refreshingServer(refreshes, ok: false).client(session: store, webSocket: sockets, reconnect: fast)
        let events = Collector(kiln.posts.created())
        let (s1, _) = try await accept(sockets, token: "a1")
        s1.serverClose(4401, "expired")
        let error = await events.ended()
        guard case .unauthenticated? = error as? KilnError else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(refreshes.get(), 1)
        XCTAssertNil(store.load())
        XCTAssertEqual(sockets.opened.get(), 1)
        guard case .closed(error: .unauthenticated?) = kiln.subscriptions.state else { return XCTFail("\(kiln.subscriptions.state)") }
    }

    func testAnonymousConnectionRefusedEndsAtOnce() async throws {
        let refreshes = Locked(0)
        let sockets = ScriptedSockets()
        let kiln = refreshingServer(refreshes).client(webSocket: sockets, reconnect: fast)
        let events = Collector(kiln.posts.created())
        let s = try await sockets.next()
        try await s.expect("connection_init")
        s.serverClose(4403, "Forbidden")
        let error = await events.ended()
        XCTAssertEqual(error as? KilnError, .forbidden(message: "the server refused the subscription's credentials (4403) Forbidden"))
        XCTAssertEqual(refreshes.get(), 0)
        XCTAssertEqual(sockets.opened.get(), 1)
    }

    /// Failures that retrying cannot heal end the stream with a KilnError,
    /// after one attempt, instead of reconnecting forever.
    func testPermanentFailuresEndTheStream() async throws {
        struct Case {
            let name: String
            var openFails: Error? = nil
            var server: (ScriptedSocket) -> Void = { _ in }
            /// The client closes with 4400 (it found a protocol violation).
            var violation = false
            let matches: (KilnError) -> Bool
        }
        let cases = [
            Case(name: "no WebSockets on this platform", openFails: KilnWebSocketError.unsupported(message: "WebSockets not supported by libcurl"),
                 matches: { if case .unsupported(let m) = $0 { return m.contains("libcurl") }; return false }),
            Case(name: "upgrade answered 404", openFails: KilnWebSocketError.rejected(status: 404, message: "not found"),
                 matches: { if case .server(code: "HTTP_404", _) = $0 { return true }; return false }),
            Case(name: "upgrade answered 403", openFails: KilnWebSocketError.rejected(status: 403, message: "forbidden"),
                 matches: { if case .forbidden = $0 { return true }; return false }),
            Case(name: "closed with 4400", server: { $0.serverClose(4400, "Invalid message received") },
                 matches: { $0 == .server(code: "WEBSOCKET_4400", message: "Invalid message received") }),
            Case(name: "closed with 4409", server: { $0.serverClose(4409, "Subscriber for 1 already exists") },
                 matches: { if case .server(code: "WEBSOCKET_4409", _) = $0 { return true }; return false }),
            Case(name: "closed with 1002", server: { $0.serverClose(1002, "") },
                 matches: { $0 == .server(code: "WEBSOCKET_1002", message: "the server closed the subscription socket with 1002") }),
            Case(name: "not JSON", server: { $0.replyRaw("hello?") }, violation: true,
                 matches: { if case .decoding = $0 { return true }; return false }),
            Case(name: "unknown message type", server: { $0.replyRaw(#"{"type":"surprise"}"#) }, violation: true,
                 matches: { if case .decoding(let m) = $0 { return m.contains("surprise") }; return false }),
        ]
        for c in cases {
            let sockets = ScriptedSockets()
            if let e = c.openFails { sockets.failNextOpen(e) }
            let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets, reconnect: fast)
            let events = Collector(kiln.posts.created())
            if c.openFails == nil {
                let s = try await sockets.next()
                try await s.expect("connection_init")
                c.server(s)
                if c.violation {
                    let code = try await s.closedByClient()
                    XCTAssertEqual(code, 4400, c.name)
                }
            }
            let error = await events.ended()
            let kilnError = try XCTUnwrap(error as? KilnError, "\(c.name): \(String(describing: error))")
            XCTAssertTrue(c.matches(kilnError), "\(c.name): \(kilnError)")
            XCTAssertEqual(sockets.opened.get(), 1, c.name)
            XCTAssertEqual(kiln.subscriptions.state, .closed(error: kilnError), c.name)
        }
    }

    func testUnsupportedURLSchemeOpensNothing() async throws {
        let sockets = ScriptedSockets()
        let kiln = KilnClient(config: KilnConfig(url: URL(string: "ftp://example.com/graphql")!, webSocket: sockets))
        let error = await Collector(kiln.posts.created()).ended()
        guard case .unsupported? = error as? KilnError else { return XCTFail("\(String(describing: error))") }
        XCTAssertEqual(sockets.opened.get(), 0)
    }

    func testUndecodableEventEndsItsSubscription() async throws {
        let sockets = ScriptedSockets()
        let kiln = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }.client(webSocket: sockets)
        let events = Collector(kiln.posts.created())
        let (s, id) = try await accept(sockets)
        s.reply("next", id: id, payload: #"{"data":{"postCreated":{"id":"p1"}}}"#)
        let error = await events.ended()
        guard case .decoding? = error as? KilnError else { return XCTFail("\(String(describing: error))") }
        let complete = try await s.expect("complete")
        XCTAssertEqual(complete["id"]?.stringValue, id)
    }

    func testConnectionInitCarriesTokenAndHeaders() async throws {
        let sockets = ScriptedSockets()
        let server = StubServer { _ in StubServer.error("INTERNAL_SERVER_ERROR") }
        let kiln = KilnClient(config: KilnConfig(url: URL(string: "https://\(server.host)/graphql")!, sessionStore: signedIn("a1", "r1"), urlSession: server.session, headers: ["X-App": "demo"], webSocket: sockets))
        let events = Collector(kiln.posts.created())
        let s = try await sockets.next()
        XCTAssertEqual(s.request.url?.absoluteString, "wss://\(server.host)/graphql")
        XCTAssertEqual(s.request.value(forHTTPHeaderField: "X-App"), "demo")
        let initMessage = try await s.expect("connection_init")
        XCTAssertEqual(text(initMessage["payload"] ?? .null), #"{"Authorization":"Bearer a1","X-App":"demo"}"#)
        events.cancel()
        _ = await events.ended()
    }

    /// The default socket (URLSessionWebSocketTask) says so when the
    /// platform cannot do WebSockets, as Linux with a libcurl without them
    /// (Debian 12's 7.88): the stream ends with KilnError.unsupported
    /// instead of reconnecting forever. Where WebSockets work, the closed
    /// port makes attempts fail until maxAttempts.
    func testDefaultSocketTellsWhenWebSocketsAreUnsupported() async throws {
        var policy = fast
        policy.maxAttempts = 2
        let kiln = KilnClient(config: KilnConfig(url: URL(string: "http://127.0.0.1:1/graphql")!, reconnect: policy))
        let error = await Collector(kiln.posts.created()).ended()
        switch error as? KilnError {
        case .unsupported(let message)?:
            XCTAssertTrue(message.contains("KilnConfig.webSocket"), message)
        case .network?:
            #if os(Linux)
            print("note: this Linux's URLSessionWebSocketTask supports WebSockets")
            #endif
        default:
            XCTFail("\(String(describing: error))")
        }
    }
}
