// The harvest store and record: round trips, the edge's upload bookkeeping,
// the cloud's chunk assembly (a resend stored once), and the checks at open
// (another model, a corrupt file, another role).
#include "harvest/store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "harvest/record.h"
#include "harvest/sink.h"
#include "support/scripted.h"

namespace deepcut::harvest {
namespace {
namespace fs = std::filesystem;

StoreIdentity Identity(const std::string& name = "m") {
  return StoreIdentity{
      .model_name = name, .fingerprint = 7, .model_tag = 3, .classes = 3, .feature_count = 4};
}

HarvestRecord Record(int frame) {
  HarvestRecord r;
  r.frame_id = frame;
  r.capture_us = 1000 * frame;
  r.stored_us = 1000 * frame + 5;
  r.label = frame % 3;
  r.image_png = {1, 2, 3, static_cast<std::uint8_t>(frame)};
  r.features = {0.1f, 0.2f, 0.3f, static_cast<float>(frame)};
  r.exit_class = 1;
  r.exit_confidence = 0.6f;
  r.exit_scores = {0.2f, 0.6f, 0.2f};
  r.cloud_class = frame % 2 ? 2 : -1;
  r.cloud_confidence = 0.9f;
  r.sampler = "harvest";
  r.score = 0.75;
  r.package = "0123456789abcdef";
  r.model_tag = 3;
  return r;
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() /
        ("deepcut-store-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Path(const std::string& name) { return (dir_ / name).string(); }
  fs::path dir_;
};

TEST(Record, RoundTripsAndRefusesDamage) {
  HarvestRecord r = Record(5);
  r.edge = 0xfeedfacecafebeefull;
  r.item = 42;
  const auto bytes = EncodeRecord(r);
  auto back = DecodeRecord(bytes);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back->edge, r.edge);
  EXPECT_EQ(back->item, 42u);
  EXPECT_EQ(back->features, r.features);
  EXPECT_EQ(back->exit_scores, r.exit_scores);
  EXPECT_EQ(back->image_png, r.image_png);
  EXPECT_EQ(back->cloud_class, 2);
  EXPECT_EQ(back->package, r.package);
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, bytes.size() / 2, bytes.size() - 1})
    EXPECT_FALSE(DecodeRecord(std::span(bytes).first(cut)).ok()) << cut;
  HarvestRecord bad = r;
  bad.exit_class = 7;  // beyond its scores
  EXPECT_FALSE(DecodeRecord(EncodeRecord(bad)).ok());
  bad = r;
  bad.features.clear();
  EXPECT_FALSE(DecodeRecord(EncodeRecord(bad)).ok());
  EXPECT_EQ(EdgeIdText(0xabcull), "0000000000000abc");
  EXPECT_EQ(*ParseEdgeId("0000000000000abc"), 0xabcull);
  EXPECT_FALSE(ParseEdgeId("xyz").ok());
}

TEST_F(StoreTest, EdgeKeepsRecordsUntilAcknowledged) {
  auto store = HarvestStore::Open(Path("edge.db"), StoreRole::kEdge, Identity());
  ASSERT_TRUE(store.ok()) << store.status().message();
  const std::uint64_t edge = (*store)->edge_id();
  EXPECT_NE(edge, 0u);
  auto a = (*store)->Add(Record(1));
  auto b = (*store)->Add(Record(2));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_LT(*a, *b);
  auto next = (*store)->NextUnsent(0);
  ASSERT_TRUE(next.ok() && next->has_value());
  EXPECT_EQ((*next)->record.item, *a);
  EXPECT_EQ((*next)->record.edge, edge);
  EXPECT_EQ((*next)->sent_chunks, 0);
  ASSERT_TRUE((*store)->MarkSent(*a, 2).ok());
  EXPECT_EQ((*(*store)->NextUnsent(0))->sent_chunks, 2);
  ASSERT_TRUE((*store)->Remove(*a).ok());
  ASSERT_TRUE((*store)->MarkRefused(*b).ok());
  EXPECT_FALSE((*(*store)->NextUnsent(0)).has_value());  // refused ones are not sent again
  auto totals = (*store)->Totals();
  EXPECT_EQ(totals->frames, 1);
  EXPECT_EQ(totals->unsent, 0);
  // Items are never reused, even after the newest was removed.
  ASSERT_TRUE((*store)->Remove(*b).ok());
  auto c = (*store)->Add(Record(3));
  EXPECT_GT(*c, *b);
  store->reset();
  // Reopened: the same edge id, the record still there.
  auto again = HarvestStore::Open(Path("edge.db"), StoreRole::kEdge, Identity());
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ((*again)->edge_id(), edge);
  EXPECT_EQ((*again)->All()->size(), 1u);
}

TEST_F(StoreTest, RefusesAnotherModelACorruptFileAndAnotherRole) {
  ASSERT_TRUE(HarvestStore::Open(Path("edge.db"), StoreRole::kEdge, Identity()).ok());
  auto other = HarvestStore::Open(Path("edge.db"), StoreRole::kEdge, Identity("other"));
  ASSERT_FALSE(other.ok());
  EXPECT_NE(other.status().message().find("was made for model 'm'"), std::string::npos)
      << other.status().message();
  auto role = HarvestStore::Open(Path("edge.db"), StoreRole::kCloud, Identity());
  ASSERT_FALSE(role.ok());
  EXPECT_NE(role.status().message().find("role"), std::string::npos);
  {
    std::ofstream junk(Path("junk.db"), std::ios::binary);
    junk << std::string(4096, 'x');
  }
  auto corrupt = HarvestStore::Open(Path("junk.db"), StoreRole::kEdge, Identity());
  ASSERT_FALSE(corrupt.ok());
  EXPECT_EQ(corrupt.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(corrupt.status().message().find("junk.db"), std::string::npos);
  EXPECT_EQ(fs::file_size(Path("junk.db")), 4096u);  // left as it was
  auto nowhere = HarvestStore::Open(Path("no/such/dir/x.db"), StoreRole::kEdge, Identity());
  ASSERT_FALSE(nowhere.ok());
  EXPECT_NE(nowhere.status().message().find("does not exist"), std::string::npos);
}

TEST_F(StoreTest, FullStoreIsAClearErrorAndKeepsWhatWasCommitted) {
  auto store = HarvestStore::Open(Path("edge.db"), StoreRole::kEdge, Identity());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE((*store)->SetMaxBytes(64 * 1024).ok());
  HarvestRecord big = Record(1);
  big.image_png.assign(20000, 7);
  int added = 0;
  Status failed;
  for (int i = 0; i < 20 && failed.ok(); ++i) {
    auto r = (*store)->Add(big);
    if (r.ok())
      ++added;
    else
      failed = r.status();
  }
  ASSERT_FALSE(failed.ok());
  EXPECT_NE(failed.message().find("full"), std::string::npos) << failed.message();
  EXPECT_GT(added, 0);
  EXPECT_EQ((*store)->Totals()->frames, added);
}

TEST_F(StoreTest, CloudAssemblesChunksOnceEvenWhenResent) {
  auto store = HarvestStore::Open(Path("cloud.db"), StoreRole::kCloud, Identity());
  ASSERT_TRUE(store.ok());
  HarvestRecord r = Record(9);
  r.edge = 77;
  r.item = 5;
  const auto bytes = EncodeRecord(r);
  const std::size_t half = bytes.size() / 2;
  const std::vector<std::uint8_t> first(bytes.begin(), bytes.begin() + half),
      second(bytes.begin() + half, bytes.end());
  auto p1 = (*store)->PutChunk(77, 5, 0, 2, first);
  ASSERT_TRUE(p1.ok());
  EXPECT_FALSE(p1->has_value());
  auto p1again = (*store)->PutChunk(77, 5, 0, 2, first);  // a resend
  EXPECT_FALSE(p1again->has_value());
  auto p2 = (*store)->PutChunk(77, 5, 1, 2, second);
  ASSERT_TRUE(p2.ok() && p2->has_value());
  EXPECT_EQ(**p2, bytes);
  auto decoded = DecodeRecord(**p2);
  ASSERT_TRUE(decoded.ok());
  EXPECT_TRUE(*(*store)->Complete(*decoded));
  EXPECT_FALSE(*(*store)->Complete(*decoded));  // stored once
  EXPECT_TRUE(*(*store)->Has(77, 5));
  EXPECT_FALSE(*(*store)->Has(78, 5));  // another edge's item 5 is another item
  EXPECT_EQ((*store)->All()->size(), 1u);
}

TEST_F(StoreTest, SinkAcknowledgesRefusesAndStoresOnce) {
  auto manifest = splitnet::LoadManifest(test_support::ModelDir());
  ASSERT_TRUE(manifest.ok());
  auto sink = HarvestSink::Open(Path("cloud.db"), *manifest);
  ASSERT_TRUE(sink.ok()) << sink.status().message();
  HarvestRecord r = Record(3);
  r.exit_scores.assign(manifest->classes.size(), 0.1f);
  r.edge = 11;
  r.item = 1;
  r.model_tag = transport::ModelTag(manifest->fingerprint);
  transport::HarvestChunk c{.edge = 11,
                            .item = 1,
                            .index = 0,
                            .count = 1,
                            .model = r.model_tag,
                            .payload = EncodeRecord(r)};
  for (int i = 0; i < 2; ++i) {
    auto ack = (*sink)->Receive(transport::EncodeHarvestChunk(c));
    ASSERT_TRUE(ack.has_value());
    EXPECT_TRUE(ack->ok);
    EXPECT_EQ(ack->item, 1u);
  }
  EXPECT_EQ((*sink)->counters().items, 1);
  EXPECT_EQ((*sink)->counters().duplicates, 1);
  c.model ^= 1;  // another package
  c.item = 2;
  auto refused = (*sink)->Receive(transport::EncodeHarvestChunk(c));
  ASSERT_TRUE(refused.has_value());
  EXPECT_FALSE(refused->ok);
  EXPECT_NE(refused->message.find("model tag"), std::string::npos);
  c.model ^= 1;
  c.payload = {1, 2, 3};  // not a record
  auto garbage = (*sink)->Receive(transport::EncodeHarvestChunk(c));
  ASSERT_TRUE(garbage.has_value());
  EXPECT_FALSE(garbage->ok);
  EXPECT_EQ((*sink)->store().All()->size(), 1u);
  const std::vector<std::uint8_t> junk = {0x93, 1, 2};
  EXPECT_FALSE((*sink)->Receive(junk).has_value());
}

}  // namespace
}  // namespace deepcut::harvest
