"""The text the synthetic support assistant reads and writes: help-center documents, questions, answers.

Everything is a short constant string built once at import, so generating a trace only picks from lists.
Grounded answers reuse the words of the document they are drawn from; the ungrounded pools below
(prompt regression, retrieval miss, quality drift) deliberately avoid the help-center vocabulary so a
word-overlap groundedness scorer can tell them apart.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Doc:
    id: str
    topic: str
    content: str
    tokens: int  # size of the full chunk the short content stands for


@dataclass(frozen=True)
class Question:
    text: str
    topic: str
    doc: Doc  # the document that answers it
    tokens: int


# topic -> [(content, chunk tokens, [questions answered by it])]
_KB: dict[str, list[tuple[str, int, list[str]]]] = {
    "returns": [
        (
            "Items can be returned within 30 days of delivery for a full refund to the original payment method.",
            240,
            ["How long do I have to return an item?", "Can I get a full refund if I return my purchase?"],
        ),
        (
            "Return shipping labels are free for defective items; other returns cost $5.95, deducted from the refund.",
            210,
            ["Do I have to pay for return shipping?"],
        ),
        (
            "Refunds are issued within 5-7 business days after the warehouse inspects the returned item.",
            190,
            ["When will I get my refund?", "My refund has not arrived yet, how long does it take?"],
        ),
    ],
    "shipping": [
        (
            "Standard shipping takes 3-5 business days; express shipping arrives in 1-2 business days.",
            220,
            ["How long does shipping take?", "How fast is express shipping?"],
        ),
        (
            "Orders over $50 ship free within the continental US.",
            150,
            ["Is shipping free?", "What is the minimum order for free shipping?"],
        ),
        (
            "International orders may incur customs duties that the recipient pays on delivery.",
            260,
            ["Do I pay customs duties on international orders?"],
        ),
        (
            "Tracking numbers are emailed once the parcel leaves the warehouse, usually within 24 hours.",
            180,
            ["When do I get a tracking number?", "Where can I find the tracking number for my parcel?"],
        ),
    ],
    "warranty": [
        (
            "All electronics carry a 12-month limited warranty covering manufacturing defects.",
            300,
            ["What does the warranty cover?", "How long is the warranty on electronics?"],
        ),
        (
            "Warranty claims require the order number and a photo of the defect.",
            170,
            ["How do I file a warranty claim?"],
        ),
        (
            "Extended protection plans add two years of coverage, including accidental damage.",
            230,
            ["Is accidental damage covered by the protection plan?"],
        ),
    ],
    "account": [
        (
            "Passwords can be reset from the sign-in page with the Forgot password link.",
            160,
            ["How do I reset my password?", "I forgot my password, what should I do?"],
        ),
        (
            "Two-factor authentication can be enabled under Account Settings, Security.",
            170,
            ["How do I turn on two-factor authentication?"],
        ),
        (
            "Accounts inactive for 24 months are closed after an email warning.",
            140,
            ["Will my inactive account be closed?"],
        ),
    ],
    "billing": [
        (
            "We accept Visa, Mastercard, American Express, PayPal and gift cards.",
            130,
            ["Which payment methods do you accept?", "Can I pay with PayPal?"],
        ),
        (
            "Duplicate charges are usually pending authorizations that drop off within 3 business days.",
            210,
            ["Why was I charged twice?", "I see a duplicate charge on my card."],
        ),
        (
            "Invoices for business accounts are available as PDF under Orders, Invoices.",
            150,
            ["Where can I download an invoice?"],
        ),
    ],
    "orders": [
        (
            "Orders can be cancelled free of charge until they are packed, usually within 1 hour.",
            190,
            ["Can I cancel my order?", "How late can I cancel an order?"],
        ),
        (
            "To change a shipping address, contact support before the parcel ships.",
            160,
            ["How do I change the shipping address of my order?"],
        ),
    ],
    "membership": [
        (
            "Plus membership costs $9.99 per month and includes free express shipping.",
            170,
            ["What does Plus membership cost?", "What do I get with Plus membership?"],
        ),
        (
            "Plus membership can be cancelled anytime; benefits last until the end of the billing period.",
            200,
            ["How do I cancel Plus membership?"],
        ),
    ],
}

TOPICS: tuple[str, ...] = tuple(_KB)
DOCS: list[Doc] = []
QUESTIONS: list[Question] = []
DOCS_BY_TOPIC: dict[str, list[Doc]] = {}
for _topic, _entries in _KB.items():
    for _i, (_content, _tokens, _questions) in enumerate(_entries):
        _doc = Doc(f"kb-{TOPICS.index(_topic) + 1}{_i + 1:03d}", _topic, _content, _tokens)
        DOCS.append(_doc)
        DOCS_BY_TOPIC.setdefault(_topic, []).append(_doc)
        for _q in _questions:
            QUESTIONS.append(Question(_q, _topic, _doc, 8 + len(_q) // 4))

_PREFIXES = ("", "Sure. ", "Good question! ", "Here is what I found: ")
_SUFFIXES = ("", " Anything else I can help with?", " Let me know if you have more questions.")


def grounded_answers(q: Question) -> tuple[str, ...]:
    """Answers that restate the document content (grounded in what retrieval returned)."""
    return tuple(f"{p}{q.doc.content}{s}" for p in _PREFIXES for s in _SUFFIXES)


GROUNDED: dict[str, tuple[str, ...]] = {q.text: grounded_answers(q) for q in QUESTIONS}

# prompt_regression: the new prompt version answers short, off-topic, refuses, ignores the context
REGRESSED_ANSWERS: tuple[str, ...] = (
    "I'm sorry, but I can't assist with that.",
    "Please visit our website.",
    "Thanks for reaching out! We are always happy to hear from you.",
    "As an AI language model, I do not have access to that information.",
    "We value your feedback and strive to improve every day.",
    "That is a great question. Have a wonderful day!",
)
# retrieval_miss: nothing useful came back, the model improvises
MISS_ANSWERS: tuple[str, ...] = (
    "I could not find anything about that. A human agent might know more.",
    "I'm not sure about that; it might be best to ask a colleague on our team.",
    "Unfortunately I have no details on this topic right now.",
    "Generally speaking this varies, so I cannot give a definite answer.",
)
# silent_quality_drift: hedging, vague, no longer restating the documents
DRIFT_ANSWERS: tuple[str, ...] = (
    "It may depend on several factors, so I would suggest double-checking with our team.",
    "In many cases something like this is possible, but I cannot say for certain.",
    "This can vary from case to case; you might want to look into it further.",
    "Possibly, although it depends on the situation and a few other things.",
)
GUARDRAIL_REPLY = "Sorry, I can't share that. Please contact our support team."

# --- summarize ------------------------------------------------------------------------------------
SUMMARIZE_DOCS: tuple[tuple[str, str], ...] = (
    (
        "Ticket thread: customer reports the blender lid cracked after two uses; agent offered a replacement; customer asked for a refund instead.",
        "Customer's blender lid cracked; replacement offered but customer wants a refund.",
    ),
    (
        "Meeting notes: Q4 peak planning, warehouse staffing +20%, carrier cut-off moved to Dec 19, express surcharge unchanged.",
        "Q4 plan: 20% more warehouse staff, carrier cut-off Dec 19, express surcharge unchanged.",
    ),
    (
        "Chat log: user could not log in after changing phone; two-factor codes went to the old number; agent reset 2FA after ID check.",
        "User locked out by 2FA on old phone; agent reset 2FA after verifying identity.",
    ),
    (
        "Email: business customer requests net-30 invoicing and a single monthly PDF invoice for all orders.",
        "Business customer asks for net-30 terms and one monthly PDF invoice.",
    ),
    (
        "Review digest: 412 reviews of the X200 headphones, praise for battery life, complaints about the hinge breaking.",
        "X200 headphones: battery life praised, hinge durability criticised.",
    ),
    (
        "Incident report: payment page returned errors for 14 minutes after a certificate rotation; 230 checkouts failed.",
        "Certificate rotation broke the payment page for 14 minutes; 230 checkouts failed.",
    ),
)

# --- agent tools ------------------------------------------------------------------------------------
CITIES = ("Denver", "Chicago", "Seattle", "Boston", "Austin", "Atlanta", "Portland", "Miami")
PRODUCTS = ("headphones", "blender", "running shoes", "desk lamp", "coffee grinder", "backpack")
CARRIERS = ("UPS", "FedEx", "USPS", "DHL")
ORDER_STATUSES = ("shipped", "in_transit", "out_for_delivery", "processing", "delivered")
WEATHER = ("snow storm", "heavy rain", "clear skies", "high winds", "light rain")

# agent scenarios: (question template, tool plan); tool names are the gen_ai.tool.name values
AGENT_SCENARIOS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Where is my order {oid}?", ("get_order_status",)),
    ("Will the weather delay my delivery to {city}? Order {oid}.", ("get_order_status", "get_weather")),
    ("Find my recent orders for {product}.", ("search_orders",)),
    ("Is my account verified? My email is {email}.", ("lookup_account",)),
    ("My order {oid} arrived broken, I want a refund.", ("get_order_status", "create_ticket")),
    ("Did my {product} order ship yet?", ("search_orders", "get_order_status")),
)
TOOL_NAMES: tuple[str, ...] = ("search_orders", "get_order_status", "get_weather", "lookup_account", "create_ticket")
# tool -> (median latency seconds, lognormal sigma, upstream service named in errors)
TOOL_LATENCY: dict[str, tuple[float, float, str]] = {
    "search_orders": (0.32, 0.45, "orders-api"),
    "get_order_status": (0.18, 0.4, "orders-api"),
    "get_weather": (0.42, 0.5, "weather-api"),
    "lookup_account": (0.14, 0.35, "crm"),
    "create_ticket": (0.55, 0.4, "helpdesk"),
}
