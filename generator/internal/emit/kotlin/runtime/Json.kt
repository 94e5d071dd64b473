package io.kiln.sdk

import java.time.Instant
import java.time.OffsetDateTime
import kotlinx.serialization.KSerializer
import kotlinx.serialization.Serializable
import kotlinx.serialization.descriptors.PrimitiveKind
import kotlinx.serialization.descriptors.PrimitiveSerialDescriptor
import kotlinx.serialization.encoding.Decoder
import kotlinx.serialization.encoding.Encoder
import kotlinx.serialization.json.Json

/** GraphQL Time (RFC 3339) as a [java.time.Instant]. */
typealias KilnTime = @Serializable(with = InstantSerializer::class) Instant

/** Encodes an Instant as RFC 3339 text and decodes any RFC 3339 offset. */
object InstantSerializer : KSerializer<Instant> {
    override val descriptor = PrimitiveSerialDescriptor("KilnTime", PrimitiveKind.STRING)
    override fun serialize(encoder: Encoder, value: Instant) = encoder.encodeString(value.toString())
    override fun deserialize(decoder: Decoder): Instant = OffsetDateTime.parse(decoder.decodeString()).toInstant()
}

/** The JSON configuration of the SDK: unknown fields are ignored, so older apps keep working. */
val KilnJson: Json = Json { ignoreUnknownKeys = true; explicitNulls = false }

/**
 * A field of an update input that can be left unchanged ([Absent]), cleared
 * ([Null]) or set ([Value]): absent and null mean different things.
 */
sealed class Patch<out T> {
    object Absent : Patch<Nothing>()
    object Null : Patch<Nothing>()
    data class Value<out T>(val value: T) : Patch<T>()

    companion object {
        /** [Null] for null, otherwise [Value]. */
        fun <T> of(value: T?): Patch<T> = if (value == null) Null else Value(value)
    }
}

/** The direction of an ordering. */
@Serializable
enum class OrderDirection { ASC, DESC }
