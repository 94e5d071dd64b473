// Hand-written (not generated): pagination, sessions and token refresh,
// persisted queries, against a scripted HTTP server (StubServer).

import Foundation
import XCTest
import Kiln

final class TransportTests: XCTestCase {
    /// A connection of posts: ids from..<to, and whether more follow.
    private static func page(_ from: Int, _ to: Int, more: Bool, total: Int) -> String {
        let edges = (from..<to).map { "{\"cursor\":\"c\($0)\",\"node\":\(postJSON("p\($0)"))}" }.joined(separator: ",")
        return "{\"posts\":{\"totalCount\":\(total),\"edges\":[\(edges)],\"pageInfo\":{\"hasNextPage\":\(more),\"hasPreviousPage\":\(from > 0),\"startCursor\":\"c\(from)\",\"endCursor\":\"c\(to - 1)\"}}}"
    }

    func testListPagesAndVariables() async throws {
        let server = StubServer { req in
            switch req.variables?["after"]?.stringValue {
            case nil: return StubServer.data(Self.page(0, 2, more: true, total: 5))
            case "c1": return StubServer.data(Self.page(2, 4, more: true, total: 5))
            default: return StubServer.data(Self.page(4, 5, more: false, total: 5))
            }
        }
        let kiln = server.client()
        let first = try await kiln.posts.list(where: PostWhereInput { $0.bodyContains = "hello" }, orderBy: [PostOrder(.title, .desc)], first: 2)
        XCTAssertEqual(first.items.map(\.id), ["p0", "p1"])
        XCTAssertEqual(first.cursors, ["c0", "c1"])
        XCTAssertEqual(first.totalCount, 5)
        XCTAssertEqual(first.nextCursor, "c1")
        let sent = try XCTUnwrap(server.requests.get().last)
        XCTAssertTrue(sent.query?.hasPrefix("query Posts(") == true)
        XCTAssertEqual(text(sent.variables ?? .null), #"{"first":2,"orderBy":[{"direction":"DESC","field":"TITLE"}],"where":{"bodyContains":"hello"}}"#)
        let last = try await kiln.posts.list(first: 2, after: "c3")
        XCTAssertNil(last.nextCursor)
        XCTAssertEqual(last.items.map(\.id), ["p4"])

        // listAll walks every page, pageSize at a time.
        var ids: [String] = []
        for try await post in kiln.posts.listAll(where: PostWhereInput { $0.bodyContains = "hello" }, pageSize: 2) {
            ids.append(post.id)
        }
        XCTAssertEqual(ids, ["p0", "p1", "p2", "p3", "p4"])
        let walked = server.requests.get().suffix(3).map { $0.variables?["after"]?.stringValue ?? "-" }
        XCTAssertEqual(walked, ["-", "c1", "c3"])
    }

    func testRefreshesOnUnauthenticatedAndRetriesOnce() async throws {
        let refreshes = Locked(0)
        let server = StubServer { req in
            if req.query?.contains("refreshSession") == true {
                refreshes.update { $0 += 1 }
                XCTAssertEqual(req.variables?["refreshToken"]?.stringValue, "r1")
                return StubServer.data("{\"refreshSession\":\(sessionJSON("a2", "r2"))}")
            }
            // Only the fresh token is accepted.
            guard req.authorization == "Bearer a2" else { return StubServer.error("UNAUTHENTICATED", "token expired") }
            return StubServer.data("{\"post\":\(postJSON("p1"))}")
        }
        let store = signedIn("a1", "r1")
        let kiln = server.client(session: store)
        let post = try await kiln.posts.get(id: "p1")
        XCTAssertEqual(post?.id, "p1")
        XCTAssertEqual(refreshes.get(), 1)
        XCTAssertEqual(store.load()?.accessToken, "a2")
        XCTAssertEqual(store.load()?.refreshToken, "r2")
        XCTAssertEqual(server.requests.get().map { $0.authorization ?? "-" }, ["Bearer a1", "-", "Bearer a2"])
    }

    func testRefreshesBeforeExpiryAndConcurrentCallsShareOneRefresh() async throws {
        let refreshes = Locked(0)
        let server = StubServer { req in
            if req.query?.contains("refreshSession") == true {
                refreshes.update { $0 += 1 }
                return StubServer.data("{\"refreshSession\":\(sessionJSON("a2", "r2"))}")
            }
            XCTAssertEqual(req.authorization, "Bearer a2")
            return StubServer.data("{\"post\":null}")
        }
        // The token expires within refreshBefore (60s): refreshed first.
        let kiln = server.client(session: signedIn("a1", "r1", expiresIn: 10))
        try await withThrowingTaskGroup(of: Post?.self) { group in
            for i in 0..<8 {
                group.addTask { try await kiln.posts.get(id: "p\(i)") }
            }
            for try await post in group { XCTAssertNil(post) }
        }
        XCTAssertEqual(refreshes.get(), 1)
    }

    func testAFailedRefreshEndsTheSession() async throws {
        let server = StubServer { req in
            if req.query?.contains("refreshSession") == true {
                return StubServer.error("UNAUTHENTICATED", "refresh token revoked")
            }
            return StubServer.error("UNAUTHENTICATED", "token expired")
        }
        let store = signedIn("a1", "r1")
        let kiln = server.client(session: store)
        do {
            _ = try await kiln.posts.get(id: "p1")
            XCTFail("no error")
        } catch KilnError.unauthenticated {
        }
        XCTAssertNil(store.load())
        XCTAssertNil(kiln.auth.currentUser)
        do {
            _ = try await kiln.auth.refresh()
            XCTFail("refreshed without a session")
        } catch KilnError.unauthenticated {
        }
    }

    func testSignInStoresTheSessionAndSignOutForgetsIt() async throws {
        let server = StubServer { req in
            if req.query?.contains("signIn(") == true {
                XCTAssertNil(req.authorization)
                XCTAssertEqual(text(req.variables ?? .null), #"{"input":{"email":"ada@example.com","password":"pw"}}"#)
                return StubServer.data("{\"signIn\":\(sessionJSON("a1", "r1"))}")
            }
            if req.query?.contains("signOut(") == true {
                XCTAssertEqual(req.variables?["refreshToken"]?.stringValue, "r1")
                return StubServer.data("{\"signOut\":true}")
            }
            return StubServer.error("INTERNAL_SERVER_ERROR")
        }
        let kiln = server.client()
        let session = try await kiln.auth.signIn(email: "ada@example.com", password: "pw")
        XCTAssertEqual(session.user.email, "ada@example.com")
        XCTAssertEqual(kiln.auth.session?.accessToken, "a1")
        try await kiln.auth.signOut()
        XCTAssertNil(kiln.auth.session)
    }

    func testPersistedQueriesSendTheHashFirst() async throws {
        let server = StubServer { req in
            guard req.query != nil else { return StubServer.error("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound") }
            return StubServer.data(#"{"posts":{"edges":[{"cursor":"c0","node":{"id":"p1","body":"b","createdAt":"2024-01-01T00:00:00Z","likeCount":2,"author":{"id":"a","handle":"ada","displayName":"Ada"}}}],"pageInfo":{"hasNextPage":false,"endCursor":"c0"}}}"#)
        }
        let kiln = server.client(persistedQueries: true)
        let feed = try await kiln.operations.feed(first: 1)
        XCTAssertEqual(feed.posts.edges?.first??.node?.author.handle, "ada")
        let sent = server.requests.get()
        XCTAssertEqual(sent.count, 2)
        XCTAssertNil(sent[0].query)
        XCTAssertEqual(sent[0].body["extensions"]?["persistedQuery"]?["sha256Hash"]?.stringValue, Operations.feedHash)
        XCTAssertEqual(sent[1].query, Operations.feedDocument)
        XCTAssertEqual(sent[1].variables?["first"], .int(1))
    }
}
