#include "mla/tokenizer/chat_template.hpp"

#include <boost/test/unit_test.hpp>

#include <string>
#include <vector>

#include "tokenizer_test_support.hpp"

using mla::tok::chat_message;
using mla::tok::chatml_options;
using mla::tok::render_chatml;

BOOST_AUTO_TEST_SUITE(chat_template)

BOOST_AUTO_TEST_CASE(default_system_prompt_when_the_first_message_is_not_system) {
  const std::string expected =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
      "<|im_start|>user\nHi<|im_end|>\n"
      "<|im_start|>assistant\n";
  BOOST_TEST(render_chatml({{"user", "Hi"}}) == expected);
}

BOOST_AUTO_TEST_CASE(an_explicit_system_message_replaces_the_default) {
  chatml_options options;
  options.add_generation_prompt = false;
  BOOST_TEST(render_chatml({{"system", "Be brief."}, {"user", "2+2?"}, {"assistant", "4"}}, options) ==
             "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n"
             "<|im_start|>assistant\n4<|im_end|>\n");
}

BOOST_AUTO_TEST_CASE(empty_conversation_and_custom_prompts) {
  BOOST_TEST(render_chatml({}) == "<|im_start|>assistant\n");
  chatml_options no_prompt;
  no_prompt.add_generation_prompt = false;
  BOOST_TEST(render_chatml({}, no_prompt).empty());
  chatml_options custom;
  custom.default_system_prompt = "Custom.";
  BOOST_TEST(render_chatml({{"user", ""}}, custom) ==
             "<|im_start|>system\nCustom.<|im_end|>\n<|im_start|>user\n<|im_end|>\n<|im_start|>assistant\n");
  chatml_options none;
  none.default_system_prompt.clear();
  BOOST_TEST(render_chatml({{"user", "x"}}, none) == "<|im_start|>user\nx<|im_end|>\n<|im_start|>assistant\n");
}

// The template text and renderings come from the GGUF and Jinja2 (tools/tokenizer_golden.py).
BOOST_AUTO_TEST_CASE(matches_jinja2_on_the_model_template) {
  const auto& g = tok_test::golden();
  BOOST_TEST(mla::tok::is_smollm2_chat_template(g["model"]["chat_template"].get<std::string>()));
  BOOST_TEST(!mla::tok::is_smollm2_chat_template("{{ messages }}"));
  BOOST_TEST(g["chat"].size() >= 5u);
  for (const auto& c : g["chat"]) {
    std::vector<chat_message> messages;
    for (const auto& m : c["messages"]) {
      messages.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    chatml_options options;
    options.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    BOOST_TEST_CONTEXT("conversation " << c["messages"].dump()) {
      BOOST_TEST(render_chatml(messages, options) == c["rendered"].get<std::string>());
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
