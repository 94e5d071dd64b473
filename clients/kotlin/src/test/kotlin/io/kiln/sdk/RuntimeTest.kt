package io.kiln.sdk

// Hand-written (not generated): unit tests of the generated runtime that
// need no server: error mapping, absent vs null in update inputs, filters,
// RFC 3339 times.

import java.time.Instant
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertIs
import kotlin.test.assertNull
import kotlinx.serialization.json.JsonPrimitive

class RuntimeTest {
    private fun error(code: String, extra: String = "") =
        """{"errors":[{"message":"m","extensions":{"code":"$code"$extra}}],"data":null}"""

    @Test
    fun errorsAreTyped() {
        fun parse(status: Int, body: String, retryAfter: Int? = null) =
            runCatching { KilnTransport.parseResponse(status, body, retryAfter) }.exceptionOrNull()
        assertIs<KilnException.NotFound>(parse(200, error("NOT_FOUND")))
        assertIs<KilnException.Conflict>(parse(200, error("CONFLICT")))
        assertEquals("handle", assertIs<KilnException.Validation>(parse(200, error("BAD_USER_INPUT", ""","field":"handle""""))).field)
        assertIs<KilnException.Unauthenticated>(parse(200, error("UNAUTHENTICATED")))
        assertIs<KilnException.Forbidden>(parse(200, error("FORBIDDEN")))
        assertEquals(7, assertIs<KilnException.RateLimited>(parse(200, error("RATE_LIMITED", ""","retryAfter":7"""))).retryAfterSeconds)
        assertEquals(3, assertIs<KilnException.RateLimited>(parse(429, "too many requests", retryAfter = 3)).retryAfterSeconds)
        assertIs<KilnException.Unauthenticated>(parse(401, "the Authorization header must be: Bearer <access token>"))
        assertEquals("UNAVAILABLE", assertIs<KilnException.Server>(parse(200, error("UNAVAILABLE"))).code)
        assertIs<KilnException.Decoding>(parse(200, "<html>"))
        assertEquals(JsonPrimitive(1), KilnTransport.parseResponse(200, """{"data":{"x":1}}""", null)["x"])
    }

    @Test
    fun updateInputsTellAbsentFromNull() {
        assertEquals("{}", UpdatePostInput().toJson().toString())
        assertEquals("""{"version":2,"title":null}""", UpdatePostInput(version = 2, title = Patch.Null).toJson().toString())
        assertEquals("""{"title":"t","body":"b"}""", UpdatePostInput(title = Patch.of("t"), body = "b").toJson().toString())
    }

    @Test
    fun filtersAndOrders() {
        val w = postWhere {
            bodyContains = "x"
            visibilityIn = listOf(Visibility.PUBLIC)
            or = listOf(postWhere { titleIsNil = true }, postWhere { not = postWhere { likeCountGT = 3 } })
            hasAuthorWith = listOf(profileWhere { handle = "ada" })
        }
        assertEquals(
            """{"or":[{"titleIsNil":true},{"not":{"likeCountGT":3}}],"bodyContains":"x","visibilityIn":["PUBLIC"],"hasAuthorWith":[{"handle":"ada"}]}""",
            w.toJson().toString(),
        )
        assertEquals("""{"field":"SCORE","direction":"DESC"}""", PostOrder(PostOrderField.SCORE, OrderDirection.DESC).toJson().toString())
    }

    @Test
    fun timesAreRfc3339() {
        val json = """{"id":"1","createdAt":"2026-11-25T05:47:01.123456789Z","updatedAt":"2026-11-25T06:47:01+01:00","version":1,"authorID":"a","body":"b","visibility":"PUBLIC","tags":[],"likeCount":0,"score":0,"ownerID":"o","attachments":[{"id":"f1","filename":"a.png","contentType":"image/png","size":3,"sha256":null,"url":"http://x/f1","createdAt":"2026-11-25T05:47:01Z"}]}"""
        val p = KilnJson.decodeFromString(Post.serializer(), json)
        assertEquals(listOf("a.png"), p.attachments.map { it.filename })
        assertEquals(Instant.parse("2026-11-25T05:47:01Z"), p.attachments[0].createdAt)
        assertEquals(Instant.parse("2026-11-25T05:47:01.123456789Z"), p.createdAt)
        assertEquals(Instant.parse("2026-11-25T05:47:01Z"), p.updatedAt)
        assertNull(p.title)
        assertEquals("2026-11-25T05:47:01.123456789Z", KilnJson.encodeToString(Post.serializer(), p).substringAfter("\"createdAt\":\"").substringBefore("\""))
    }
}
