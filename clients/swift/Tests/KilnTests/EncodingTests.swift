// Hand-written (not generated): what inputs, filters and orderings send,
// and how responses (dates included) decode.

import Foundation
import XCTest
import Kiln

final class EncodingTests: XCTestCase {
    func testCreateInputSendsRequiredAndSetFields() {
        let input = CreatePostInput(body: "hi", authorID: "a1", title: "T", visibility: .followers, tags: ["x", "y"], publishedAt: Date(timeIntervalSince1970: 1_700_000_000.5))
        XCTAssertEqual(text(input.toJSON()), #"{"authorID":"a1","body":"hi","publishedAt":"2023-11-14T22:13:20.500Z","tags":["x","y"],"title":"T","visibility":"FOLLOWERS"}"#)
        // Optional fields left nil are not sent (the server applies its defaults).
        XCTAssertEqual(text(CreatePostInput(body: "hi", authorID: "a1").toJSON()), #"{"authorID":"a1","body":"hi"}"#)
        // Enum lists, ints, client-chosen ids.
        let profile = CreateProfileInput(handle: "ada", displayName: "Ada", id: "00000000-0000-4000-8000-000000000001", birthYear: 1815, interests: [.tech, .music])
        XCTAssertEqual(text(profile.toJSON()), #"{"birthYear":1815,"displayName":"Ada","handle":"ada","id":"00000000-0000-4000-8000-000000000001","interests":["TECH","MUSIC"]}"#)
    }

    func testUpdateInputTellsAbsentFromNullFromValue() {
        // Absent: not sent at all, the field is unchanged.
        XCTAssertEqual(text(UpdatePostInput().toJSON()), "{}")
        // Null clears a nullable field; a value sets it.
        XCTAssertEqual(text(UpdatePostInput(version: 3, title: .null).toJSON()), #"{"title":null,"version":3}"#)
        XCTAssertEqual(text(UpdatePostInput(title: .value("new"), publishedAt: .value(Date(timeIntervalSince1970: 0))).toJSON()), #"{"publishedAt":"1970-01-01T00:00:00.000Z","title":"new"}"#)
        var input = UpdateProfileInput(bio: .value("x"))
        input.bio = .absent
        input.avatarID = .null
        input.website = .value("https://example.com")
        XCTAssertEqual(text(input.toJSON()), #"{"avatarID":null,"website":"https:\/\/example.com"}"#)
        // A list replaces the whole list; an empty one empties it.
        XCTAssertEqual(text(UpdatePostInput(attachmentIDs: []).toJSON()), #"{"attachmentIDs":[]}"#)
    }

    func testWhereInputNestsNotAndOrAndRelations() {
        let w = PostWhereInput {
            $0.bodyContains = "kiln"
            $0.visibilityIn = [.public, .followers]
            $0.not = PostWhereInput { $0.titleIsNil = true }
            $0.or = [PostWhereInput { $0.likeCountGTE = 3 }, PostWhereInput { $0.publishedAtLT = Date(timeIntervalSince1970: 86400) }]
            $0.hasAuthorWith = [ProfileWhereInput { $0.handle = "ada" }]
        }
        XCTAssertEqual(text(w.toJSON()), #"{"bodyContains":"kiln","hasAuthorWith":[{"handle":"ada"}],"not":{"titleIsNil":true},"or":[{"likeCountGTE":3},{"publishedAtLT":"1970-01-02T00:00:00.000Z"}],"visibilityIn":["PUBLIC","FOLLOWERS"]}"#)
        // A value type: a copy changes on its own.
        var copy = w
        copy.not = nil
        XCTAssertNil(copy.not)
        XCTAssertNotNil(w.not)
        XCTAssertEqual(text(PostWhereInput().toJSON()), "{}")
    }

    func testOrderings() {
        XCTAssertEqual(text(PostOrder(.likeCount, .desc).toJSON()), #"{"direction":"DESC","field":"LIKE_COUNT"}"#)
        XCTAssertEqual(text(ProfileOrder(.handle).toJSON()), #"{"direction":"ASC","field":"HANDLE"}"#)
        XCTAssertEqual(PostOrderField.allCases.map(\.rawValue), ["CREATED_AT", "UPDATED_AT", "TITLE", "LIKE_COUNT", "SCORE", "PUBLISHED_AT"])
    }

    func testDates() throws {
        // Sent as RFC 3339 with milliseconds, in UTC.
        XCTAssertEqual(KilnCoding.string(from: Date(timeIntervalSince1970: 1_700_000_000.123)), "2023-11-14T22:13:20.123Z")
        // Read with any number of fractional digits, or none, and any offset.
        let base = Date(timeIntervalSince1970: 1_700_000_000)
        for (text, want) in [
            ("2023-11-14T22:13:20Z", base),
            ("2023-11-14T22:13:20.5Z", base.addingTimeInterval(0.5)),
            ("2023-11-14T22:13:20.123Z", base.addingTimeInterval(0.123)),
            ("2023-11-14T22:13:20.123456789Z", base.addingTimeInterval(0.123)),
            ("2023-11-14T23:13:20.250+01:00", base.addingTimeInterval(0.25)),
        ] {
            let got = try XCTUnwrap(KilnCoding.date(from: text), text)
            XCTAssertEqual(got.timeIntervalSince1970, want.timeIntervalSince1970, accuracy: 0.0005, text)
        }
        XCTAssertNil(KilnCoding.date(from: "yesterday"))
        // Models decode their dates; a bad one is a decoding error.
        let post = try KilnCoding.decode(Post.self, from: json(postJSON("p1")))
        XCTAssertEqual(post.createdAt.timeIntervalSince1970, 1_714_979_289.123, accuracy: 0.0005)
        XCTAssertNil(post.publishedAt)
        XCTAssertEqual(post.visibility, .public)
        XCTAssertThrowsError(try KilnCoding.decode(Post.self, from: json(postJSON("p1").replacingOccurrences(of: "2024-05-06T07:08:09Z", with: "soon")))) { error in
            guard case KilnError.decoding? = error as? KilnError else { return XCTFail("\(error)") }
        }
    }

    func testJSONValueRoundTrip() throws {
        let v = json(#"{"a":[1,2.5,"x",true,null,{"b":{}}],"n":-3}"#)
        XCTAssertEqual(v["a"], .array([.int(1), .number(2.5), .string("x"), .bool(true), .null, .object(["b": .object([:])])]))
        XCTAssertEqual(v["n"]?.intValue, -3)
        XCTAssertEqual(json(text(v)), v)
        // The request body every call sends.
        let body = try KilnTransport.body("query Q { x }", variables: ["id": .string("1")], hash: "abc")
        XCTAssertEqual(String(decoding: body, as: UTF8.self), #"{"extensions":{"persistedQuery":{"sha256Hash":"abc","version":1}},"query":"query Q { x }","variables":{"id":"1"}}"#)
    }
}
