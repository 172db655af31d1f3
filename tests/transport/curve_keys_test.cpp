// CURVE key files: parsing, validation and atomic writing (transport/curve_keys.h).
#include "transport/curve_keys.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace deepcut::transport {
namespace {

namespace fs = std::filesystem;

// A fixed pair from the ZeroMQ reference manual (zmq_curve(7)).
constexpr const char* kPublic = "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID";
constexpr const char* kSecret = "D:)Q[IlAW!ahhC2ac:9*A}h:p?([4%wOTJ%JR%cs";
constexpr const char* kOtherPublic = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7";

std::string PairText(const std::string& public_key = kPublic,
                     const std::string& secret_key = kSecret) {
  return "# a comment\n\npublic-key = " + public_key + "\nsecret-key = " + secret_key + "\n";
}

class CurveKeyFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("deepcut-curve-keys-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) {
    std::ofstream(dir_ / name) << text;
  }
  fs::path dir_;
};

TEST(CurveKeysTest, ParsesAGoodKeyFile) {
  auto pair = ParseSecretKeyFile(PairText(), "good.key");
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_EQ(pair->public_key, kPublic);
  EXPECT_EQ(pair->secret_key, kSecret);
}

TEST(CurveKeysTest, ToleratesSpacingAndCarriageReturns) {
  auto pair = ParseSecretKeyFile(
      "  public-key=" + std::string(kPublic) + "\r\n\tsecret-key   =  " + kSecret, "crlf.key");
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_EQ(pair->secret_key, kSecret);
}

TEST(CurveKeysTest, ParsesAGoodPublicFile) {
  auto key = ParsePublicKeyFile("public-key = " + std::string(kPublic) + "\n", "good.pub");
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(*key, kPublic);
}

TEST(CurveKeysTest, FormattedFilesParseBack) {
  auto pair = ParseSecretKeyFile(FormatSecretKeyFile({kPublic, kSecret}), "x.key");
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_EQ(pair->public_key, kPublic);
  auto key = ParsePublicKeyFile(FormatPublicKeyFile(kPublic), "x.pub");
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(*key, kPublic);
}

TEST(CurveKeysTest, MissingFieldsAreNamed) {
  auto no_secret = ParseSecretKeyFile("public-key = " + std::string(kPublic) + "\n", "a.key");
  ASSERT_FALSE(no_secret.ok());
  EXPECT_NE(no_secret.status().message().find("a.key"), std::string::npos);
  EXPECT_NE(no_secret.status().message().find("secret-key"), std::string::npos);

  auto no_public = ParseSecretKeyFile("secret-key = " + std::string(kSecret) + "\n", "b.key");
  ASSERT_FALSE(no_public.ok());
  EXPECT_NE(no_public.status().message().find("public-key"), std::string::npos);

  auto empty = ParsePublicKeyFile("# only a comment\n", "c.pub");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("c.pub"), std::string::npos);
  EXPECT_NE(empty.status().message().find("public-key"), std::string::npos);
}

TEST(CurveKeysTest, BadLengthIsRefusedWithItsLine) {
  const std::string text = "public-key = " + std::string(kPublic) + "\nsecret-key = abc\n";
  auto pair = ParseSecretKeyFile(text, "short.key");
  ASSERT_FALSE(pair.ok());
  EXPECT_EQ(pair.status().code(), StatusCode::kInvalidArgument);
  const std::string& m = pair.status().message();
  EXPECT_NE(m.find("short.key:2"), std::string::npos) << m;
  EXPECT_NE(m.find("40 Z85 characters"), std::string::npos) << m;
  EXPECT_NE(m.find("has 3"), std::string::npos) << m;

  auto too_long = ParsePublicKeyFile("public-key = " + std::string(kPublic) + "X", "long.pub");
  ASSERT_FALSE(too_long.ok());
  EXPECT_NE(too_long.status().message().find("has 41"), std::string::npos);
}

TEST(CurveKeysTest, BadCharactersAreRefused) {
  std::string key = kPublic;
  key[7] = '~';  // not in the Z85 alphabet
  auto parsed = ParsePublicKeyFile("public-key = " + key, "tilde.pub");
  ASSERT_FALSE(parsed.ok());
  EXPECT_NE(parsed.status().message().find("character 8"), std::string::npos)
      << parsed.status().message();
  EXPECT_NE(parsed.status().message().find("not a Z85 character"), std::string::npos);

  key = kPublic;
  key[3] = ' ';  // inner whitespace is not trimmed away
  EXPECT_FALSE(ParsePublicKeyFile("public-key = " + key, "space.pub").ok());
}

TEST(CurveKeysTest, OutOfRangeZ85GroupIsRefused) {
  // "#####" is 84 * (85^4 + ... + 1) > 2^32 - 1: valid characters, invalid value.
  const std::string key = std::string(kPublic).substr(0, 35) + "#####";
  Status status = CheckZ85Key(key);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("out of range"), std::string::npos) << status.message();
}

TEST(CurveKeysTest, UnknownRepeatedAndMalformedLinesAreRefused) {
  auto unknown = ParseSecretKeyFile(PairText() + "colour = blue\n", "u.key");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("unknown field 'colour'"), std::string::npos);

  auto repeated = ParseSecretKeyFile(PairText() + "public-key = " + kPublic + "\n", "r.key");
  ASSERT_FALSE(repeated.ok());
  EXPECT_NE(repeated.status().message().find("given twice"), std::string::npos);

  auto no_equals = ParseSecretKeyFile("public-key " + std::string(kPublic), "e.key");
  ASSERT_FALSE(no_equals.ok());
  EXPECT_NE(no_equals.status().message().find("e.key:1"), std::string::npos);
}

TEST(CurveKeysTest, PublicFileWithASecretIsRefused) {
  auto key = ParsePublicKeyFile(PairText(), "cloud.key");
  ASSERT_FALSE(key.ok());
  EXPECT_NE(key.status().message().find("secret key"), std::string::npos);
}

TEST(CurveKeysTest, MismatchedPairIsRefused) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  auto pair = ParseSecretKeyFile(PairText(kOtherPublic), "mismatch.key");
  ASSERT_FALSE(pair.ok());
  EXPECT_NE(pair.status().message().find("does not belong"), std::string::npos)
      << pair.status().message();
}

TEST(CurveKeysTest, GeneratedPairsAreValidAndDistinct) {
  if (!CurveAvailable()) GTEST_SKIP() << "libzmq without CURVE";
  auto a = GenerateCurveKeyPair();
  auto b = GenerateCurveKeyPair();
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_TRUE(CheckZ85Key(a->public_key).ok());
  EXPECT_TRUE(CheckZ85Key(a->secret_key).ok());
  EXPECT_NE(a->secret_key, b->secret_key);
  EXPECT_TRUE(ParseSecretKeyFile(FormatSecretKeyFile(*a), "gen.key").ok());
}

TEST_F(CurveKeyFilesTest, WritesBothFilesWithModesAndReadsThemBack) {
  ASSERT_TRUE(WriteKeyFiles(dir_.string(), "cloud", {kPublic, kSecret}, false).ok());
  struct stat key_stat, pub_stat;
  ASSERT_EQ(::stat((dir_ / "cloud.key").c_str(), &key_stat), 0);
  ASSERT_EQ(::stat((dir_ / "cloud.pub").c_str(), &pub_stat), 0);
  EXPECT_EQ(key_stat.st_mode & 0777, 0600u);
  EXPECT_EQ(pub_stat.st_mode & 0777, 0644u);
  auto pair = ReadSecretKeyFile((dir_ / "cloud.key").string());
  ASSERT_TRUE(pair.ok()) << pair.status().message();
  EXPECT_EQ(pair->secret_key, kSecret);
  auto key = ReadPublicKeyFile((dir_ / "cloud.pub").string());
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(*key, kPublic);
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_EQ(entry.path().string().find(".tmp"), std::string::npos) << entry.path();
}

TEST_F(CurveKeyFilesTest, RefusesToOverwriteWithoutForce) {
  Write("edge.pub", "keep me\n");
  Status status = WriteKeyFiles(dir_.string(), "edge", {kPublic, kSecret}, false);
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("exists"), std::string::npos);
  EXPECT_FALSE(fs::exists(dir_ / "edge.key"));  // neither file is written
  std::ifstream in(dir_ / "edge.pub");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "keep me");

  ASSERT_TRUE(WriteKeyFiles(dir_.string(), "edge", {kPublic, kSecret}, true).ok());
  auto key = ReadPublicKeyFile((dir_ / "edge.pub").string());
  ASSERT_TRUE(key.ok()) << key.status().message();
  EXPECT_EQ(*key, kPublic);
}

TEST_F(CurveKeyFilesTest, ReadsADirectoryOfPublicKeys) {
  Write("b.pub", FormatPublicKeyFile(kOtherPublic));
  Write("a.pub", FormatPublicKeyFile(kPublic));
  Write("notes.txt", "not a key\n");
  auto keys = ReadPublicKeys(dir_.string());
  ASSERT_TRUE(keys.ok()) << keys.status().message();
  ASSERT_EQ(keys->size(), 2u);
  EXPECT_EQ((*keys)[0], kPublic);  // sorted by file name
  EXPECT_EQ((*keys)[1], kOtherPublic);

  Write("c.pub", "public-key = nope\n");
  auto bad = ReadPublicKeys(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("c.pub"), std::string::npos);
}

TEST_F(CurveKeyFilesTest, EmptyDirectoryAndMissingFileAreErrors) {
  auto none = ReadPublicKeys(dir_.string());
  ASSERT_FALSE(none.ok());
  EXPECT_NE(none.status().message().find("no .pub files"), std::string::npos);
  auto missing = ReadSecretKeyFile((dir_ / "missing.key").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("missing.key"), std::string::npos);
}

}  // namespace
}  // namespace deepcut::transport
