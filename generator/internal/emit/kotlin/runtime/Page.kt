package io.kiln.sdk

import kotlinx.serialization.KSerializer
import kotlinx.serialization.Serializable
import kotlinx.serialization.json.JsonElement
import kotlinx.serialization.json.JsonNull
import kotlinx.serialization.json.JsonObject
import kotlinx.serialization.json.int
import kotlinx.serialization.json.jsonArray
import kotlinx.serialization.json.jsonObject
import kotlinx.serialization.json.jsonPrimitive

/** Relay page information of a list call. */
@Serializable
data class PageInfo(
    val hasNextPage: Boolean,
    val hasPreviousPage: Boolean,
    val startCursor: String? = null,
    val endCursor: String? = null,
)

/** One page of a list: the records, their cursors, and how to go on. */
data class Page<T>(
    val items: List<T>,
    val cursors: List<String>,
    val pageInfo: PageInfo,
    /** How many records match the filter in all. */
    val totalCount: Int,
) {
    /** The cursor to pass as `after` for the next page, or null on the last page. */
    val nextCursor: String? get() = if (pageInfo.hasNextPage) pageInfo.endCursor else null
}

internal fun <T> decodePage(connection: JsonElement, node: KSerializer<T>): Page<T> {
    try {
        val obj = connection.jsonObject
        val items = ArrayList<T>()
        val cursors = ArrayList<String>()
        for (edge in (obj["edges"]?.takeIf { it !is JsonNull }?.jsonArray ?: emptyList())) {
            if (edge is JsonNull) continue
            val e = edge.jsonObject
            val n = e["node"] ?: continue
            if (n is JsonNull) continue
            items.add(KilnJson.decodeFromJsonElement(node, n))
            cursors.add(e["cursor"]!!.jsonPrimitive.content)
        }
        return Page(
            items = items,
            cursors = cursors,
            pageInfo = KilnJson.decodeFromJsonElement(PageInfo.serializer(), obj["pageInfo"]!!),
            totalCount = obj["totalCount"]!!.jsonPrimitive.int,
        )
    } catch (e: KilnException) {
        throw e
    } catch (e: Exception) {
        throw KilnException.Decoding("unexpected connection shape: ${e.message}", e)
    }
}

internal fun <T> decodeField(data: JsonObject, field: String, serializer: KSerializer<T>): T {
    val v = data[field] ?: throw KilnException.Decoding("response has no $field")
    try {
        return KilnJson.decodeFromJsonElement(serializer, v)
    } catch (e: Exception) {
        throw KilnException.Decoding("cannot decode $field: ${e.message}", e)
    }
}
