// mla::tok chat template: ChatML rendering as the SmolLM2 instruct models' Jinja template does it,
// without a Jinja engine.
//
//   <|im_start|>{role}\n{content}<|im_end|>\n      for every message
//   <|im_start|>system\n{default prompt}<|im_end|>\n   first, when the first message is not "system"
//   <|im_start|>assistant\n                          last, when a generation prompt is asked for
//
// An empty conversation gets no default system prompt (the template adds it inside the message
// loop). Contents are inserted verbatim: a "<|im_end|>" typed by a user becomes the special token
// when the rendered text is encoded, as with transformers' apply_chat_template + encode.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace mla::tok {

struct chat_message {
  std::string role;  // "system", "user", "assistant", ...
  std::string content;
};

// The template text stored in the SmolLM2 instruct GGUF (tokenizer.chat_template); its string
// literals hold real newlines. render_chatml() implements exactly this template.
inline constexpr std::string_view smollm2_chat_template =
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}";

inline constexpr std::string_view smollm2_default_system_prompt =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

struct chatml_options {
  // Inserted as a system message when the conversation does not start with one; empty: never.
  std::string default_system_prompt{smollm2_default_system_prompt};
  bool add_generation_prompt = true;  // end with "<|im_start|>assistant\n"
};

inline void append_chatml_message(std::string& out, std::string_view role, std::string_view content) {
  out += "<|im_start|>";
  out += role;
  out += '\n';
  out += content;
  out += "<|im_end|>\n";
}

inline std::string render_chatml(const std::vector<chat_message>& messages, const chatml_options& options = {}) {
  std::string out;
  if (!messages.empty() && messages.front().role != "system" && !options.default_system_prompt.empty()) {
    append_chatml_message(out, "system", options.default_system_prompt);
  }
  for (const chat_message& m : messages) append_chatml_message(out, m.role, m.content);
  if (options.add_generation_prompt) out += "<|im_start|>assistant\n";
  return out;
}

// gpt-oss's harmony chat format (OpenAI's harmony docs; the chat_template of openai/gpt-oss-*):
//   <|start|>system<|message|>{model identity}\nKnowledge cutoff: 2024-06\n\nReasoning: {effort}\n\n
//     # Valid channels: analysis, commentary, final. Channel must be included for every message.<|end|>
//   <|start|>developer<|message|># Instructions\n\n{content}<|end|>     for a "system" message
//   <|start|>{role}<|message|>{content}<|end|>                            for every other message
//   <|start|>assistant                                                    when a generation prompt is asked for
// The model answers "<|channel|>analysis<|message|>...<|end|><|start|>assistant<|channel|>final<|message|>...
// <|return|>". The date line of the Jinja template (today's date) is left out, so that rendering is
// deterministic.
struct harmony_options {
  std::string model_identity = "You are ChatGPT, a large language model trained by OpenAI.";
  std::string reasoning_effort = "medium";  // low | medium | high
  bool add_generation_prompt = true;
};

inline std::string render_harmony(const std::vector<chat_message>& messages, const harmony_options& options = {}) {
  std::string out = "<|start|>system<|message|>" + options.model_identity +
                    "\nKnowledge cutoff: 2024-06\n\nReasoning: " + options.reasoning_effort +
                    "\n\n# Valid channels: analysis, commentary, final. Channel must be included for every message."
                    "<|end|>";
  for (const chat_message& m : messages) {
    if (m.role == "system" || m.role == "developer") {
      out += "<|start|>developer<|message|># Instructions\n\n" + m.content + "<|end|>";
    } else {
      out += "<|start|>" + m.role + "<|message|>" + m.content + "<|end|>";
    }
  }
  if (options.add_generation_prompt) out += "<|start|>assistant";
  return out;
}

// True when a model's template text is the SmolLM2 one, i.e. render_chatml() renders it faithfully.
inline bool is_smollm2_chat_template(std::string_view template_text) noexcept {
  return template_text == smollm2_chat_template;
}

}  // namespace mla::tok
