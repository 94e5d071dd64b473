// Hand-written (not generated): the SDK against a live Kiln server serving
// the example schema, over real HTTP and WebSocket. clients/swift_test.go
// starts the server and passes its GraphQL URL in KILN_URL (it also sets
// KILN_REQUIRE_LIVE=1, so a missing URL fails instead of skipping).
// By hand: `make run` in one terminal, then
// `KILN_URL=http://localhost:8080/graphql clients/swift/test.sh` (Linux)
// or `KILN_URL=... swift test` (a Mac).

import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import XCTest
import Kiln

final class LiveTests: XCTestCase {
    func liveURL() throws -> URL {
        guard let s = ProcessInfo.processInfo.environment["KILN_URL"], let url = URL(string: s) else {
            if ProcessInfo.processInfo.environment["KILN_REQUIRE_LIVE"] == "1" {
                XCTFail("KILN_REQUIRE_LIVE=1 but KILN_URL is not set")
            }
            throw XCTSkip("KILN_URL is not set: no live server (start one with `make run` and set KILN_URL=http://localhost:8080/graphql)")
        }
        return url
    }

    /// A client of the live server. Its subscriptions use the SDK's default
    /// socket (URLSessionWebSocketTask) where it works, and on Linux the
    /// test-only PlainWebSockets (see PlainWebSocket.swift for why).
    func client(_ url: URL, store: SessionStore = InMemorySessionStore()) -> KilnClient {
        #if os(Linux)
        return KilnClient(config: KilnConfig(url: url, sessionStore: store, webSocket: PlainWebSockets()))
        #else
        return KilnClient(config: KilnConfig(url: url, sessionStore: store))
        #endif
    }

    func tag() -> String { String(UUID().uuidString.lowercased().prefix(8)) }

    /// Creates posts (by `author`) until `events` delivers one, at most 100
    /// times: the subscribe message goes out after the acknowledgement and
    /// the server answers nothing to it, so the first posts may come
    /// before the server runs the subscription.
    func publishUntilReceived(_ kiln: KilnClient, author: String, body: String, _ events: Collector<Post>) async throws -> Post {
        for i in 0..<100 {
            _ = try await kiln.posts.create(CreatePostInput(body: "\(body) \(i)", authorID: author))
            try await Task.sleep(nanoseconds: 100_000_000)
            if let event = events.available().first(where: { $0.body.hasPrefix(body) }) { return event }
        }
        XCTFail("no event on the subscription after 100 posts")
        throw NotReceived()
    }

    struct NotReceived: Error {}

    /// Sign-in with an ID token of the OpenID provider clients/swift_test.go
    /// runs (KILN_TEST_ID_TOKEN): the identity is listed and, being the only
    /// way in, cannot be unlinked; a wrong nonce is refused; the redirect
    /// flow starts at the provider, and only for an allowed redirect URI;
    /// TOTP enrollment gives an otpauth:// URI.
    func testProviderSignIn() async throws {
        let url = try liveURL()
        let env = ProcessInfo.processInfo.environment
        guard let idToken = env["KILN_TEST_ID_TOKEN"], let nonce = env["KILN_TEST_ID_NONCE"], let issuer = env["KILN_TEST_ID_ISSUER"] else {
            throw XCTSkip("KILN_TEST_ID_TOKEN is not set: no test OpenID provider (clients/swift_test.go sets it)")
        }
        let app = client(url)
        let session = try await app.auth.signInWithIdToken(provider: "test", idToken: idToken, nonce: nonce)
        XCTAssertEqual(session.user.email, "swift-id@example.com")
        let identities = try await app.auth.identities()
        XCTAssertEqual(identities.map(\.provider), ["test"])
        do {
            try await app.auth.unlinkIdentity(provider: "test")
            XCTFail("the only way in was unlinked")
        } catch KilnError.conflict {
        }
        do {
            _ = try await client(url).auth.signInWithIdToken(provider: "test", idToken: idToken, nonce: "another")
            XCTFail("a wrong nonce signed in")
        } catch KilnError.unauthenticated {
        }

        let start = try await client(url).auth.startRedirectSignIn(provider: "test", redirectUri: "io.kiln.test:/auth")
        XCTAssertTrue(start.absoluteString.hasPrefix(issuer + "/authorize?"), start.absoluteString)
        XCTAssertTrue(start.absoluteString.contains("code_challenge_method=S256"), start.absoluteString)
        do {
            _ = try await client(url).auth.startRedirectSignIn(provider: "test", redirectUri: "io.evil.app:/auth")
            XCTFail("a redirect URI off the allow-list was accepted")
        } catch KilnError.validation(let field, _, _) {
            XCTAssertEqual(field, "redirectUri")
        }

        let enrollment = try await app.auth.enrollTotp()
        XCTAssertTrue(enrollment.uri.hasPrefix("otpauth://totp/"), enrollment.uri)
        XCTAssertFalse(enrollment.secret.isEmpty)
        app.close()
    }

    /// An anonymous user who signs in with a provider keeps their account: the SDK sends the anonymous session.
    func testAnonymousKeepsAccountOnProviderSignIn() async throws {
        let url = try liveURL()
        let env = ProcessInfo.processInfo.environment
        guard let idToken = env["KILN_TEST_ID_TOKEN_ANON"], let nonce = env["KILN_TEST_ID_NONCE"] else {
            throw XCTSkip("KILN_TEST_ID_TOKEN_ANON is not set: no test OpenID provider (clients/swift_test.go sets it)")
        }
        let app = client(url)
        let anonymous = try await app.auth.signInAnonymously()
        XCTAssertTrue(anonymous.user.anonymous)
        let session = try await app.auth.signInWithIdToken(provider: "test", idToken: idToken, nonce: nonce)
        XCTAssertEqual(session.user.id, anonymous.user.id)
        XCTAssertFalse(session.user.anonymous)
        XCTAssertEqual(session.user.email, "swift-anon@example.com")
        app.close()
    }

    /// Point 3 of issue 23: what an app does, end to end.
    func testAppFlow() async throws {
        let url = try liveURL()
        let tag = tag()
        let ada = client(url)
        let session = try await ada.auth.signUp(email: "ada-\(tag)@example.com", password: "correct horse battery \(tag)")
        try await ada.auth.requestEmailVerification() // a new code for the address (the server logs the mail here)
        XCTAssertFalse(session.user.anonymous)
        let again = try await ada.auth.signIn(email: "ada-\(tag)@example.com", password: "correct horse battery \(tag)")
        XCTAssertEqual(again.user.id, session.user.id)
        let viewer = try await ada.auth.viewer()
        XCTAssertEqual(viewer?.id, session.user.id)

        // Validation errors name the field.
        do {
            _ = try await ada.profiles.create(CreateProfileInput(handle: "NO!", displayName: "Ada"))
            XCTFail("an invalid handle was accepted")
        } catch KilnError.validation(let field, _, _) {
            XCTAssertEqual(field, "handle")
        }
        let profile = try await ada.profiles.create(CreateProfileInput(handle: "ada_\(tag)", displayName: "Ada", interests: [.tech]))
        XCTAssertEqual(profile.interests, [.tech])
        let read = try await ada.profiles.get(id: profile.id)
        XCTAssertEqual(read, profile)

        var posts: [Post] = []
        for i in 1...3 {
            posts.append(try await ada.posts.create(CreatePostInput(body: "hello \(tag) \(i)", authorID: profile.id, title: "t\(i)")))
        }
        XCTAssertEqual(posts[0].visibility, .public)

        // A filtered list in order, page by page, and every page at once.
        let filter = PostWhereInput {
            $0.bodyContains = "hello \(tag)"
            $0.authorID = profile.id
        }
        let order = [PostOrder(.title, .desc)]
        let page1 = try await ada.posts.list(where: filter, orderBy: order, first: 2)
        XCTAssertEqual(page1.totalCount, 3)
        XCTAssertEqual(page1.items.map(\.body), ["hello \(tag) 3", "hello \(tag) 2"])
        let page2 = try await ada.posts.list(where: filter, orderBy: order, first: 2, after: try XCTUnwrap(page1.nextCursor))
        XCTAssertEqual(page2.items.map(\.body), ["hello \(tag) 1"])
        XCTAssertNil(page2.nextCursor)
        var all: [String] = []
        for try await post in ada.posts.listAll(where: filter, orderBy: order, pageSize: 1) { all.append(post.body) }
        XCTAssertEqual(all, ["hello \(tag) 3", "hello \(tag) 2", "hello \(tag) 1"])
        let got = try await ada.posts.get(id: posts[0].id)
        XCTAssertEqual(got?.id, posts[0].id)

        // Update with the version read; null clears, absent keeps. A stale version conflicts.
        let p = posts[0]
        let updated = try await ada.posts.update(id: p.id, UpdatePostInput(version: p.version, title: .null, body: "edited \(tag)"))
        XCTAssertEqual(updated.version, p.version + 1)
        XCTAssertNil(updated.title)
        XCTAssertEqual(updated.visibility, p.visibility)
        do {
            _ = try await ada.posts.update(id: p.id, UpdatePostInput(version: p.version, body: "stale"))
            XCTFail("a stale version was accepted")
        } catch KilnError.conflict {
        }
        let afterConflict = try await ada.posts.get(id: p.id)
        XCTAssertEqual(afterConflict?.body, "edited \(tag)")

        // Another user may read the public post, not change it.
        let bob = client(url)
        try await bob.auth.signUp(email: "bob-\(tag)@example.com", password: "correct horse battery \(tag)")
        let seen = try await bob.posts.get(id: p.id)
        XCTAssertEqual(seen?.body, "edited \(tag)")
        do {
            _ = try await bob.posts.update(id: p.id, UpdatePostInput(body: "mine now"))
            XCTFail("another user's update was accepted")
        } catch KilnError.forbidden {
        }

        // Files: one multipart request, and the ticket flow with progress.
        let dot: [UInt8] = [0x89, 0x50, 0x4e, 0x47]
        let small = try await ada.files.uploadSmall(data: Data(dot), filename: "dot.png", contentType: "image/png")
        XCTAssertEqual(small.size, 4)
        let smallBytes = try await ada.files.download(id: small.id)
        XCTAssertEqual(Array(smallBytes), dot)
        var generator = SystemRandomNumberGenerator()
        let image = Data((0..<300_000).map { _ in UInt8.random(in: 0...255, using: &generator) })
        let reports = Locked<[(Int64, Int64)]>([])
        let photo = try await ada.files.upload(data: image, filename: "photo.png", contentType: "image/png") { sent, total in
            reports.update { $0.append((sent, total)) }
        }
        XCTAssertEqual(photo.size, image.count)
        XCTAssertEqual(photo.filename, "photo.png")
        XCTAssertEqual(photo.contentType, "image/png")
        let progress = reports.get()
        XCTAssertFalse(progress.isEmpty, "no progress reports")
        XCTAssertEqual(progress.last?.0, Int64(image.count))
        XCTAssertTrue(progress.allSatisfy { $0.1 == Int64(image.count) }, "\(progress)")

        // Attach as avatar, read back, download (through the SDK and the record's signed url).
        let withAvatar = try await ada.profiles.update(id: profile.id, UpdateProfileInput(avatarID: .value(photo.id)))
        XCTAssertEqual(withAvatar.avatar?.id, photo.id)
        let downloaded = try await ada.files.download(id: photo.id)
        XCTAssertEqual(downloaded, image)
        let avatarURL = try XCTUnwrap(URL(string: try XCTUnwrap(withAvatar.avatar?.url)))
        let (viaURL, _) = try await URLSession.shared.data(from: avatarURL)
        XCTAssertEqual(viaURL, image)
        let detached = try await ada.profiles.update(id: profile.id, UpdateProfileInput(avatarID: .null))
        XCTAssertNil(detached.avatar)

        // An image rendition: made by the server on the first GET; a size the
        // server does not allow is refused with its reason.
        let tinyPNG: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x04, 0x08, 0x02, 0x00, 0x00, 0x00, 0x26, 0x93, 0x09, 0x29, 0x00, 0x00, 0x00, 0x29, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9c, 0x0d, 0xc7, 0x31, 0x01, 0x00, 0x00, 0x0c, 0xc2, 0x30, 0x84, 0x21, 0x0c, 0x61, 0x15, 0x51, 0x59, 0x5b, 0xbe, 0x24, 0xb1, 0x71, 0x91, 0x98, 0xd4, 0xd6, 0x55, 0xfa, 0x99, 0x9d, 0x9b, 0xec, 0x83, 0xc5, 0x21, 0x78, 0x17, 0xf2, 0x17, 0xc1, 0x69, 0xaf, 0x69, 0x50, 0x00, 0x00, 0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82]
        let pic = try await ada.files.uploadSmall(data: Data(tinyPNG), filename: "tiny.png", contentType: "image/png")
        let thumbURL = try await ada.files.imageURL(id: pic.id, width: 64, height: 64, fit: .contain)
        let (thumb, thumbResponse) = try await URLSession.shared.data(from: thumbURL)
        XCTAssertEqual((thumbResponse as? HTTPURLResponse)?.statusCode, 200)
        XCTAssertEqual((thumbResponse as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Type"), "image/png")
        XCTAssertEqual(Array(thumb.prefix(4)), [0x89, 0x50, 0x4e, 0x47])
        do {
            _ = try await ada.files.imageURL(id: pic.id, width: 63, height: 63)
            XCTFail("a size the server does not allow was accepted")
        } catch KilnError.validation(_, _, let reason) {
            XCTAssertEqual(reason, "UNSUPPORTED_IMAGE_SIZE")
        }

        // A type no File field accepts: refused with its reason, on both paths.
        do {
            _ = try await ada.files.upload(data: Data([1, 2, 3]), filename: "a.exe", contentType: "application/x-msdownload")
            XCTFail("an .exe was accepted")
        } catch KilnError.validation(_, _, let reason) {
            XCTAssertEqual(reason, "UNSUPPORTED_CONTENT_TYPE")
        }
        do {
            _ = try await ada.files.uploadSmall(data: Data([1, 2, 3]), filename: "a.exe", contentType: "application/x-msdownload")
            XCTFail("an .exe was accepted")
        } catch KilnError.validation(_, _, let reason) {
            XCTAssertEqual(reason, "UNSUPPORTED_CONTENT_TYPE")
        }

        // Custom operations are typed functions.
        let feed = try await ada.operations.feed(first: 2)
        XCTAssertEqual(feed.posts.edges?.count, 2)
        let published = try await ada.operations.publish(authorID: profile.id, body: "published \(tag)")
        XCTAssertEqual(published.createPost.body, "published \(tag)")

        // A relation the viewer may not read is nil, the record stays: Bob
        // likes a post, Ada makes it private, Bob's like keeps its postID.
        _ = try await bob.profiles.create(CreateProfileInput(handle: "bob_\(tag)", displayName: "Bob"))
        let liked = try await ada.posts.create(CreatePostInput(body: "liked \(tag)", authorID: profile.id))
        _ = try await bob.likes.create(CreateLikeInput(postID: liked.id))
        _ = try await ada.posts.update(id: liked.id, UpdatePostInput(visibility: .private))
        let bobsLikes = try await bob.operations.myLikes(first: 100).likes.edges ?? []
        let bobsLike = try XCTUnwrap(bobsLikes.compactMap { $0?.node }.first { $0.postID == liked.id })
        XCTAssertNil(bobsLike.post, "a like of a post Bob may no longer read has post == nil")
        let adasLikes = try await ada.operations.myLikes(first: 100).likes.edges ?? []
        XCTAssertEqual(adasLikes.compactMap { $0?.node }.first { $0.postID == liked.id }?.post?.id, liked.id)

        // Delete: the id comes back and the record is gone.
        let deleted = try await ada.posts.delete(id: posts[1].id)
        XCTAssertEqual(deleted, posts[1].id)
        let gone = try await ada.posts.get(id: posts[1].id)
        XCTAssertNil(gone)

        // Sign out: the session is gone, and so is the viewer.
        try await ada.auth.signOut()
        XCTAssertNil(ada.auth.session)
        let nobody = try await ada.auth.viewer()
        XCTAssertNil(nobody)
    }

    /// A refused access token is refreshed and the call retried; an
    /// expiring one is refreshed first. (Each client is a new launch that
    /// loads the session from its store.)
    func testRefreshesTokens() async throws {
        let url = try liveURL()
        let s = try await client(url).auth.signInAnonymously()
        let store = InMemorySessionStore()
        store.save(Session(accessToken: "garbage", refreshToken: s.refreshToken, expiresAt: s.expiresAt, user: s.user))
        let c = client(url, store: store)
        let viewer = try await c.auth.viewer()
        XCTAssertEqual(viewer?.id, s.user.id)
        let refreshed = try XCTUnwrap(c.auth.session)
        XCTAssertNotEqual(refreshed.accessToken, "garbage")
        XCTAssertEqual(store.load(), refreshed, "the refreshed session is saved")
        store.save(Session(accessToken: refreshed.accessToken, refreshToken: refreshed.refreshToken, expiresAt: Date(), user: refreshed.user))
        let expiring = client(url, store: store)
        let again = try await expiring.auth.viewer()
        XCTAssertEqual(again?.id, s.user.id)
        XCTAssertNotEqual(expiring.auth.session?.refreshToken, refreshed.refreshToken)
        // A revoked refresh token ends the session.
        try await expiring.auth.signOut()
        XCTAssertNil(store.load(), "sign-out clears the store")
        store.save(Session(accessToken: "garbage", refreshToken: refreshed.refreshToken, expiresAt: Date(), user: s.user))
        let stale = client(url, store: store)
        do {
            _ = try await stale.auth.refresh()
            XCTFail("a revoked refresh token refreshed")
        } catch KilnError.unauthenticated {
        }
        XCTAssertNil(stale.auth.session)
        XCTAssertNil(store.load())
    }

    /// close() against the live server, on the URLSession the client made
    /// itself: a running subscription ends without an error, the state
    /// watchers end, later calls throw KilnError.closed; a session kept in
    /// a FileSessionStore is there for the next client (the next launch).
    func testCloseEndsSubscriptionsAndCalls() async throws {
        let url = try liveURL()
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("kiln-live-\(tag())")
        defer { try? FileManager.default.removeItem(at: dir) }
        let store = FileSessionStore(url: dir.appendingPathComponent("session.json"))
        let kiln = client(url, store: store)
        let session = try await kiln.auth.signInAnonymously()
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(kiln.posts.created())
        await awaitState(&states, until: { $0 == .connected })

        kiln.close()
        XCTAssertTrue(kiln.isClosed)
        let end = await events.ended()
        XCTAssertNil(end, "close() ends a subscription without an error")
        await awaitState(&states, until: { $0 == .closed(error: nil) })
        let after = await states.next()
        XCTAssertNil(after, "the state updates end")
        do {
            _ = try await kiln.auth.viewer()
            XCTFail("a call after close() went through")
        } catch KilnError.closed {
        }

        let next = client(url, store: store)
        XCTAssertEqual(next.auth.session?.accessToken, session.accessToken)
        let viewer = try await next.auth.viewer()
        XCTAssertEqual(viewer?.id, session.user.id)
        next.close()
    }

    /// Another client's event arrives on a subscription, over the real
    /// graphql-transport-ws exchange with the server.
    func testSubscriptionReceivesAnotherClientsEvent() async throws {
        let url = try liveURL()
        let tag = tag()
        let ada = client(url)
        try await ada.auth.signUp(email: "ada-live-\(tag)@example.com", password: "correct horse battery \(tag)")
        let profile = try await ada.profiles.create(CreateProfileInput(handle: "live_\(tag)", displayName: "Ada"))

        let bob = client(url)
        try await bob.auth.signInAnonymously()
        var states = bob.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(bob.posts.created(where: PostWhereInput { $0.bodyHasPrefix = "live \(tag)" }))
        let seen = await awaitState(&states, until: { if case .closed(error: _?) = $0 { return true }; return $0 == .connected })
        XCTAssertEqual(seen.last, .connected, "\(seen)")
        let event = try await publishUntilReceived(ada, author: profile.id, body: "live \(tag)", events)
        XCTAssertEqual(event.authorID, profile.id)
        XCTAssertEqual(event.visibility, .public)

        events.cancel()
        let end = await events.ended()
        XCTAssertNil(end)
        await awaitState(&states, until: { $0 == .closed(error: nil) })
    }

    /// A password change makes the server close the other sessions'
    /// sockets with 4403 (clients/swift_test.go runs it with a short
    /// KILN_WS_REVALIDATE): the subscription refreshes its token,
    /// reconnects, resubscribes, and events keep coming.
    func testSubscriptionResumesAfterThePasswordChanged() async throws {
        let url = try liveURL()
        let tag = tag()
        let ada = client(url)
        try await ada.auth.signUp(email: "ada-pw-\(tag)@example.com", password: "correct horse battery \(tag)")
        let profile = try await ada.profiles.create(CreateProfileInput(handle: "pw_\(tag)", displayName: "Ada"))

        let bob = client(url)
        try await bob.auth.signUp(email: "bob-pw-\(tag)@example.com", password: "first password \(tag)")
        var states = bob.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(bob.posts.created(where: PostWhereInput { $0.bodyHasPrefix = "again \(tag)" }))
        await awaitState(&states, until: { $0 == .connected })
        _ = try await publishUntilReceived(ada, author: profile.id, body: "again \(tag) 1", events)

        let before = try XCTUnwrap(bob.auth.session?.accessToken)
        try await bob.auth.changePassword(currentPassword: "first password \(tag)", newPassword: "second password \(tag)")
        XCTAssertNotEqual(bob.auth.session?.accessToken, before)
        let seen = await awaitState(&states, until: { if case .closed = $0 { return true }; return $0 == .connected })
        XCTAssertEqual(seen, [.connecting, .connected])
        _ = try await publishUntilReceived(ada, author: profile.id, body: "again \(tag) 2", events)
        events.cancel()
        _ = await events.ended()
    }

    /// The SDK's default socket against the live server: where
    /// URLSessionWebSocketTask cannot do WebSockets (Linux with Debian 12's
    /// libcurl), the subscription ends with KilnError.unsupported at once,
    /// instead of reconnecting forever; elsewhere it connects.
    func testDefaultSocketTellsTheTruth() async throws {
        let kiln = KilnClient(url: try liveURL())
        var states = kiln.subscriptions.stateUpdates().makeAsyncIterator()
        let events = Collector(kiln.posts.created())
        let seen = await awaitState(&states, until: { if case .closed(error: _?) = $0 { return true }; return $0 == .connected })
        switch seen.last {
        case .connected?:
            events.cancel()
            _ = await events.ended()
        case .closed(error: .unsupported(let message)?)?:
            #if !os(Linux)
            XCTFail("URLSessionWebSocketTask unsupported on this platform: \(message)")
            #endif
            let error = await events.ended()
            XCTAssertEqual(error as? KilnError, .unsupported(message: message))
            print("note: URLSessionWebSocketTask cannot open WebSockets here (\(message)); the live subscription tests use PlainWebSockets")
        default:
            XCTFail("\(seen)")
        }
    }
}
