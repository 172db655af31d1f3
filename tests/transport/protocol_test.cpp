#include "transport/protocol.h"

#include <gtest/gtest.h>

#include <msgpack.hpp>

namespace deepcut::transport {
namespace {

Request SampleRequest() {
  Request r;
  r.seq = 42;
  r.model = 0xbeef;
  r.rate_index = 2;
  r.deadline_ms = 200;
  r.coding = 1;
  r.payload = {1, 2, 3, 250, 251};
  return r;
}

TEST(Protocol, RequestRoundTrip) {
  auto r = SampleRequest();
  auto bytes = EncodeRequest(r);
  auto back = DecodeRequest(bytes);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seq, r.seq);
  EXPECT_EQ(back->model, r.model);
  EXPECT_EQ(back->rate_index, 2);
  EXPECT_EQ(back->deadline_ms, 200u);
  EXPECT_EQ(back->coding, 1);
  EXPECT_EQ(back->payload, r.payload);
  // Every header byte is paid on every offload: at most 15 bytes around the payload.
  EXPECT_LE(bytes.size() - r.payload.size(), 15u);
}

TEST(Protocol, HarvestChunkAndAckRoundTripAndRefuseDamage) {
  HarvestChunk c{.edge = 0xfedcba9876543210ull,
                 .item = 77,
                 .index = 2,
                 .count = 5,
                 .model = 4321,
                 .payload = {9, 8, 7}};
  const auto bytes = EncodeHarvestChunk(c);
  EXPECT_EQ(PeekKind(bytes), kKindHarvestChunk);
  EXPECT_FALSE(PeekRequestSeq(bytes).has_value());
  auto back = DecodeHarvestChunk(bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->edge, c.edge);
  EXPECT_EQ(back->item, 77u);
  EXPECT_EQ(back->index, 2u);
  EXPECT_EQ(back->count, 5u);
  EXPECT_EQ(back->model, 4321);
  EXPECT_EQ(back->payload, c.payload);
  EXPECT_FALSE(DecodeRequest(bytes).ok());  // a chunk is not a request
  HarvestChunk bad = c;
  bad.index = 5;  // not below the count
  EXPECT_FALSE(DecodeHarvestChunk(EncodeHarvestChunk(bad)).ok());
  bad = c;
  bad.payload.clear();
  EXPECT_FALSE(DecodeHarvestChunk(EncodeHarvestChunk(bad)).ok());
  for (std::size_t cut = 0; cut < bytes.size(); cut += 3)
    EXPECT_FALSE(DecodeHarvestChunk(std::span(bytes).first(cut)).ok()) << cut;

  HarvestAck a{.edge = 1, .item = 2, .index = 3, .ok = false, .message = "model tag 9 is not"};
  const auto ack_bytes = EncodeHarvestAck(a);
  EXPECT_EQ(PeekKind(ack_bytes), kKindHarvestAck);
  auto ack = DecodeHarvestAck(ack_bytes);
  ASSERT_TRUE(ack.ok());
  EXPECT_FALSE(ack->ok);
  EXPECT_EQ(ack->message, a.message);
  EXPECT_EQ(ack->index, 3u);
  EXPECT_FALSE(DecodeReply(ack_bytes).ok());
  EXPECT_EQ(PeekKind(EncodeRequest(Request{.payload = {1}})), kKindRequest);
  EXPECT_FALSE(PeekKind(std::vector<std::uint8_t>{0xc1}).has_value());
}

TEST(Protocol, ReplyRoundTrip) {
  Reply r;
  r.seq = 7;
  r.class_id = 3;
  r.top = {{3, 0.9f}, {1, 0.05f}};
  r.queue_us = 10;
  r.decode_us = 20;
  r.tail_us = 300;
  r.batch_size = 4;
  auto back = DecodeReply(EncodeReply(r));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->class_id, 3);
  ASSERT_EQ(back->top.size(), 2u);
  EXPECT_FLOAT_EQ(back->top[0].score, 0.9f);
  EXPECT_EQ(back->tail_us, 300);
  EXPECT_EQ(back->batch_size, 4);

  Reply busy;
  busy.seq = 9;
  busy.status = ReplyStatus::kBusy;
  busy.message = "queue full";
  auto b = DecodeReply(EncodeReply(busy));
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->status, ReplyStatus::kBusy);
  EXPECT_EQ(b->message, "queue full");
}

// Rewrites one field of an encoded request's array with `value`.
template <typename T>
std::vector<std::uint8_t> WithField(size_t index, const T& value) {
  auto bytes = EncodeRequest(SampleRequest());
  auto handle = msgpack::unpack(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  const auto& a = handle.get().via.array;
  pk.pack_array(a.size);
  for (size_t i = 0; i < a.size; ++i) {
    if (i == index)
      pk.pack(value);
    else
      pk.pack(a.ptr[i]);
  }
  return std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size());
}

void ExpectRefused(const std::vector<std::uint8_t>& bytes, const std::string& mention) {
  auto r = DecodeRequest(bytes);
  ASSERT_FALSE(r.ok()) << "accepted a bad request that should mention " << mention;
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find(mention), std::string::npos) << r.status().message();
}

// Found by fuzzing: an error text longer than the decoder's string limit made
// the reply undecodable; it is cut when encoded.
TEST(Protocol, LongReplyMessagesAreCutNotUndecodable) {
  Reply reply;
  reply.seq = 9;
  reply.status = ReplyStatus::kError;
  reply.message = std::string(5000, 'x');
  auto decoded = DecodeReply(EncodeReply(reply));
  ASSERT_TRUE(decoded.ok()) << decoded.status().ToString();
  EXPECT_EQ(decoded->message, std::string(kMaxReplyMessageBytes, 'x'));
  EXPECT_EQ(decoded->seq, 9);
}

TEST(Protocol, RefusesEachMalformedField) {
  ExpectRefused(WithField(0, kProtocolVersion + 1), "version");
  ExpectRefused(WithField(0, 1), "version");  // version 1 coded payloads differently
  ExpectRefused(WithField(1, 2), "kind");
  ExpectRefused(WithField(2, -1), "seq");
  ExpectRefused(WithField(2, "7"), "seq");
  ExpectRefused(WithField(3, -5), "model");
  ExpectRefused(WithField(3, 1 << 16), "model");
  ExpectRefused(WithField(2, 1 << 16), "seq");
  ExpectRefused(WithField(4, 256), "rate");
  ExpectRefused(WithField(4, 1.5), "rate");
  ExpectRefused(WithField(5, 10'000'000), "deadline_ms");
  ExpectRefused(WithField(6, 3), "coding");
  ExpectRefused(WithField(7, std::string("abc")), "payload");
  ExpectRefused(WithField(7, std::vector<char>{}), "payload");
}

TEST(Protocol, RefusesBrokenEnvelopes) {
  auto good = EncodeRequest(SampleRequest());
  ExpectRefused({}, "empty");
  // Every truncation is refused, none crashes.
  for (size_t n = 1; n < good.size(); ++n) {
    auto r = DecodeRequest(std::span(good.data(), n));
    EXPECT_FALSE(r.ok()) << "truncated at " << n;
  }
  auto trailing = good;
  trailing.push_back(0);
  ExpectRefused(trailing, "trailing");
  ExpectRefused(std::vector<std::uint8_t>(kMaxMessageBytes + 1, 0x90), "exceeds");
  // A map instead of an array.
  msgpack::sbuffer buffer;
  msgpack::packer<msgpack::sbuffer> pk(buffer);
  pk.pack_map(1);
  pk.pack(1);
  pk.pack(1);
  ExpectRefused(std::vector<std::uint8_t>(buffer.data(), buffer.data() + buffer.size()), "msgpack");
  // An array header claiming 2^32-1 elements must not allocate them.
  std::vector<std::uint8_t> huge{0xdd, 0xff, 0xff, 0xff, 0xff};
  EXPECT_FALSE(DecodeRequest(huge).ok());
  // A reply is not a request.
  Reply reply;
  reply.class_id = 1;
  ExpectRefused(EncodeReply(reply), "kind");
}

TEST(Protocol, RefusesMalformedReplies) {
  Reply ok;
  ok.seq = 1;
  ok.class_id = -1;  // an ok reply must carry a class
  EXPECT_FALSE(DecodeReply(EncodeReply(ok)).ok());
  EXPECT_FALSE(DecodeReply(EncodeRequest(SampleRequest())).ok());
  auto good = EncodeReply(Reply{.seq = 1, .class_id = 2});
  for (size_t n = 1; n < good.size(); ++n)
    EXPECT_FALSE(DecodeReply(std::span(good.data(), n)).ok());
}

}  // namespace
}  // namespace deepcut::transport
