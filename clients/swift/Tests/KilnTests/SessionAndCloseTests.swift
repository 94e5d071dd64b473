// Hand-written (not generated): session stores (in memory, in a file) and
// the client's use of them (loaded at init, saved on every change), and
// KilnClient.close() on scripted sockets.

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Kiln

final class SessionAndCloseTests: XCTestCase {
    func session(_ access: String, _ refresh: String) -> Session {
        try! KilnCoding.decode(Session.self, from: json(sessionJSON(access, refresh)))
    }

    func tempDir() -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-session-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        return dir
    }

    func permissions(_ url: URL) throws -> Int {
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        return (attributes[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    func testInMemoryStore() {
        let store = InMemorySessionStore()
        XCTAssertNil(store.load())
        store.save(session("a1", "r1"))
        XCTAssertEqual(store.load()?.accessToken, "a1")
        store.clear()
        XCTAssertNil(store.load())
    }

    func testFileStoreWritesAtomicallyAndOwnerOnly() throws {
        let dir = tempDir().appendingPathComponent("nested")
        let url = dir.appendingPathComponent("session.json")
        let store = FileSessionStore(url: url)
        XCTAssertNil(try store.load(), "no file: no session")
        let s = session("a1", "r1")
        try store.save(s)
        let loaded = try XCTUnwrap(try store.load())
        XCTAssertEqual(loaded.accessToken, s.accessToken)
        XCTAssertEqual(loaded.refreshToken, s.refreshToken)
        XCTAssertEqual(loaded.user, s.user)
        XCTAssertEqual(loaded.expiresAt.timeIntervalSince1970, s.expiresAt.timeIntervalSince1970, accuracy: 0.001)
        XCTAssertEqual(try FileSessionStore(url: url).load()?.refreshToken, "r1", "another store on the file reads it")
        XCTAssertEqual(try permissions(url), 0o600)
        XCTAssertEqual(try permissions(dir), 0o700)
        try store.save(session("a2", "r2"))
        XCTAssertEqual(try store.load()?.accessToken, "a2")
        // Only the session file is left: the temporary files were renamed over it.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["session.json"])
        try store.clear()
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path))
        XCTAssertNil(try store.load())
        try store.clear() // clearing nothing is fine
        try Data("not a session".utf8).write(to: url)
        XCTAssertNil(try store.load(), "a file that holds no session reads as none")
    }

    /// A server for the auth flow: signIn answers a1/r1, refreshSession
    /// a fresh pair each time, signOut true, anything else a null viewer.
    func authServer() -> StubServer {
        let refreshes = Locked(0)
        return StubServer { req in
            let q = req.query ?? ""
            if q.contains("signIn(") { return StubServer.data("{\"signIn\":\(sessionJSON("a1", "r1"))}") }
            if q.contains("refreshSession(") {
                let n = refreshes.update { n -> Int in n += 1; return n }
                return StubServer.data("{\"refreshSession\":\(sessionJSON("a-fresh-\(n)", "r-fresh-\(n)"))}")
            }
            if q.contains("signOut(") { return StubServer.data("{\"signOut\":true}") }
            return StubServer.data("{\"viewer\":null}")
        }
    }

    func testClientLoadsTheSessionAndSavesEveryChange() async throws {
        let server = authServer()
        let url = tempDir().appendingPathComponent("session.json")
        let store = FileSessionStore(url: url)
        let first = server.client(session: store)
        XCTAssertNil(first.auth.session)
        try await first.auth.signIn(email: "ada@example.com", password: "correct horse battery")
        XCTAssertEqual(try store.load()?.accessToken, "a1", "sign-in saves")
        first.close()

        // A new client (the next launch) starts signed in, from the file.
        let kiln = server.client(session: FileSessionStore(url: url))
        XCTAssertEqual(kiln.auth.session?.accessToken, "a1")
        XCTAssertEqual(kiln.auth.currentUser?.id, "u1")
        _ = try await kiln.auth.viewer()
        XCTAssertEqual(server.requests.get().last?.authorization, "Bearer a1", "the stored token is sent")
        try await kiln.auth.refresh()
        XCTAssertEqual(kiln.auth.session?.accessToken, "a-fresh-1")
        XCTAssertEqual(try store.load()?.refreshToken, "r-fresh-1", "refresh saves")
        let sentRefresh = server.requests.get().last { $0.query?.contains("refreshSession(") == true }
        XCTAssertEqual(sentRefresh?.variables?["refreshToken"]?.stringValue, "r1")
        try await kiln.auth.signOut()
        XCTAssertNil(kiln.auth.session)
        XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), "sign-out clears")
        kiln.close()
    }

    /// A store that cannot write: the call that changed the session throws
    /// its error, and the client keeps the session in memory.
    func testStoreErrorsAreThrownAndTheSessionKept() async throws {
        final class Broken: SessionStore, Sendable {
            func load() throws -> Session? { throw KilnSessionStoreError(message: "cannot read") }
            func save(_ session: Session) throws { throw KilnSessionStoreError(message: "disk full") }
            func clear() throws {}
        }
        let kiln = authServer().client(session: Broken())
        XCTAssertNil(kiln.auth.session, "a store that cannot load: no session")
        do {
            try await kiln.auth.signIn(email: "ada@example.com", password: "correct horse battery")
            XCTFail("the store's error was not thrown")
        } catch let error as KilnSessionStoreError {
            XCTAssertEqual(error.message, "disk full")
        }
        XCTAssertEqual(kiln.auth.session?.accessToken, "a1")
        kiln.close()
    }

    /// close(): the socket closes with 1000, a running subscription ends
    /// without an error, the state goes to closed and its watchers end;
    /// later calls and subscriptions fail with KilnError.closed; a
    /// URLSession the app passed stays usable.
    func testCloseEndsSubscriptionsAndLaterCalls() async throws {
        let sockets = ScriptedSockets()
        let server = StubServer { _ in StubServer.data("{\"viewer\":null}") }
        let kiln = server.client(webSocket: sockets)
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(kiln.posts.created())
        let s = try await sockets.next()
        try await s.expect("connection_init")
        s.reply("connection_ack")
        let sub = try await s.expect("subscribe")
        let id = try XCTUnwrap(sub["id"]?.stringValue)
        await awaitState(&states, until: { $0 == .connected })
        s.reply("next", id: id, payload: "{\"data\":{\"postCreated\":\(postJSON("p1"))}}")
        _ = try await events.next()

        kiln.close()
        kiln.close() // twice is fine
        XCTAssertTrue(kiln.isClosed)
        let end = await events.ended()
        XCTAssertNil(end, "close() ends a subscription without an error")
        let code = try await s.closedByClient()
        XCTAssertEqual(code, 1000)
        XCTAssertEqual(s.closed?.reason, "client closed")
        await awaitState(&states, until: { $0 == .closed(error: nil) })
        let after = await states.next()
        XCTAssertNil(after, "the state updates end")
        var late = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let lateFirst = await late.next()
        XCTAssertEqual(lateFirst, .closed(error: nil))
        let lateEnd = await late.next()
        XCTAssertNil(lateEnd)

        do {
            _ = try await kiln.auth.viewer()
            XCTFail("a call after close() went through")
        } catch KilnError.closed {
        }
        let refused = await Collector(kiln.posts.created()).ended()
        XCTAssertEqual(refused as? KilnError, .closed(message: "this KilnClient is closed"))
        XCTAssertEqual(sockets.opened.get(), 1, "no socket opened after close()")
        let requests = server.requests.get().count

        // The URLSession was the app's (the stub's): it still works.
        let other = KilnClient(config: KilnConfig(url: server.url, urlSession: kiln.transport.urlSession))
        _ = try await other.auth.viewer()
        XCTAssertEqual(server.requests.get().count, requests + 1)
        other.close()
    }

    /// A client on its own URLSession (KilnConfig.urlSession nil): close()
    /// invalidates it; calls fail with KilnError.closed, not a crash.
    func testCloseInvalidatesTheClientsOwnSession() async throws {
        let kiln = KilnClient(url: URL(string: "http://127.0.0.1:1/graphql")!)
        XCTAssertFalse(kiln.isClosed)
        kiln.close()
        do {
            _ = try await kiln.files.download(id: "f1")
            XCTFail("a download after close() went through")
        } catch KilnError.closed {
        }
        do {
            _ = try await kiln.auth.signInAnonymously()
            XCTFail("a call after close() went through")
        } catch KilnError.closed {
        }
    }
}
