package io.kiln.sdk

// Hand-written (not generated): tests of the code generated for the
// example's models that need no server: absent vs null in update inputs,
// filters and orderings, a Post with its files and RFC 3339 times. Like
// LiveTest.kt, clients/kotlin_test.go runs it in a copy of clients/kotlin;
// the runtime's own tests are generated into clients/kotlin/src/test.

import java.time.Instant
import kotlin.test.Test
import kotlin.test.assertEquals
import kotlin.test.assertNull

class ExampleTest {
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
